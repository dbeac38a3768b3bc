"""TCM placement end to end (docs/tcm.md): the same model built for nucleo_f746 with placement
on (the default), off (``--no-tcm``), and on a variant of the board with its I-cache off (where
kernels in ITCM pay), and for nucleo_h743zi (a DTCM apart from RAM); every firmware is
bit-exact with the TFLite Micro reference on the emulator, and the placed symbols live where the
report says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.e2e.test_cycle_model_builds import _conv_model
from tinyprune.cli import main
from tinyprune.firmware import boards, paths

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def _symbols(elf: Path) -> dict[str, int]:
    with elf.open("rb") as handle:
        table = ELFFile(handle).get_section_by_name(".symtab")
        return {s.name: s["st_value"] & ~1 for s in table.iter_symbols()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, Path]]:
    work = tmp_path_factory.mktemp("tcm")
    model = _conv_model(work / "c.tflite")
    uncached = work / "boards"
    uncached.mkdir()
    text = (paths.boards_dir() / "nucleo_f746.toml").read_text()
    (uncached / "nucleo_f746.toml").write_text(text.replace("icache = true ", "icache = false"))
    out = {}
    searched = list(boards._user_dirs)  # --boards-dir adds to the process's board search
    try:
        _build_all(work, model, uncached, out)
    finally:
        boards._user_dirs[:] = searched
    return out


def _build_all(work: Path, model: Path, uncached: Path, out: dict) -> None:
    for name, board, extra in (("on", "nucleo_f746", []), ("off", "nucleo_f746", ["--no-tcm"]),
                               ("itcm", "nucleo_f746", ["--boards-dir", str(uncached)]),
                               ("h7", "nucleo_h743zi", [])):
        target = work / name
        rc = main(["build", "--board", board, "--model", str(model), "--out", str(target),
                   "--samples", "1", "--random-samples", "0", *extra])
        assert rc == 0, name
        out[name] = (json.loads((target / "report.json").read_text()), target)


def test_placement_moves_the_weights_to_dtcm_and_stays_bit_exact(builds: dict) -> None:
    (on, on_dir), (off, off_dir) = builds["on"], builds["off"]
    assert on["run"]["bit_exact"] and off["run"]["bit_exact"]
    tcm = on["firmware"]["tcm"]
    placed = [d for d in tcm["decisions"] if d["placed"]]
    assert [(d["kernel"], d["memory"]) for d in placed] == [("tp_conv_interleaved_s8", "dtcm")]
    assert tcm["dtcm_bytes"] >= placed[0]["bytes"] > 1152  # the filter and its bias/requant
    symbols_on = _symbols(on_dir / "firmware" / "firmware.elf")
    symbols_off = _symbols(off_dir / "firmware" / "firmware.elf")
    for array in placed[0]["symbols"]:
        assert 0x2000_0000 <= symbols_on[array] < 0x2001_0000  # inside the DTCM
        assert 0x0800_0000 <= symbols_off[array] < 0x0810_0000  # in flash
    assert on["firmware"]["ram_used_bytes"] - off["firmware"]["ram_used_bytes"] == \
        tcm["dtcm_bytes"]
    assert off["firmware"]["tcm"]["enabled"] is False and off["firmware"]["tcm"]["dtcm_bytes"] == 0
    # the same instructions, priced without the weights' flash wait states
    assert on["run"]["instructions_per_inference"] == off["run"]["instructions_per_inference"]
    assert on["run"]["cycles_per_inference"] < off["run"]["cycles_per_inference"]
    assert "TCM placement | ITCM 0 B, DTCM" in (on_dir / "report.md").read_text()


def test_kernels_run_from_itcm_when_the_icache_is_off(builds: dict) -> None:
    report, out = builds["itcm"]
    assert report["run"]["bit_exact"]
    code = [d for d in report["firmware"]["tcm"]["decisions"]
            if d["placed"] and d["kind"] == "code"]
    assert "tp_conv_interleaved_s8" in [d["kernel"] for d in code]
    address = _symbols(out / "firmware" / "firmware.elf")["tp_conv_interleaved_s8"]
    assert 0 <= address < 0x4000  # in the ITCM


def test_a_dtcm_apart_from_ram_is_mapped(builds: dict) -> None:
    report, out = builds["h7"]
    assert report["run"]["bit_exact"]
    tcm = report["firmware"]["tcm"]
    arrays = [s for d in tcm["decisions"] if d["placed"] for s in d["symbols"]]
    assert arrays and tcm["dtcm_size"] == 128 << 10
    symbols = _symbols(out / "firmware" / "firmware.elf")
    assert all(0x2000_0000 <= symbols[a] < 0x2002_0000 for a in arrays)
