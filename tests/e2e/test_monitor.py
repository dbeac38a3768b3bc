"""`tinyprune monitor` over a pseudo-terminal that replays a real firmware's UART output.

A real build (the MLPerf Tiny KWS model on nucleo_f746) runs on unicorn; what its firmware sent
on the UART is written into the master side of a pty at a serial-like pace while `tinyprune
monitor` reads the slave side with pyserial, as it would read a board's ST-LINK port.
"""

from __future__ import annotations

import json
import os
import shutil
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.emulator import run_elf
from tinyprune.firmware import load_board

ROOT = Path(__file__).resolve().parents[2]
KWS = ROOT / "tests" / "fixtures" / "mlperf_tiny" / "kws_ref_model.tflite"
# 115200 baud 8N1 is 11,520 bytes/s: 16-byte chunks every 1.4 ms
CHUNK, PAUSE_S = 16, 0.0014

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
    pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals on this system"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real build and the UART text its firmware prints on the emulated board."""
    out = tmp_path_factory.mktemp("monitor") / "kws-nucleo_f746"
    assert main(["build", "--board", "nucleo_f746", "--model", str(KWS), "--samples", "2",
                 "--random-samples", "8", "--out", str(out)]) == 0
    uart = run_elf(load_board("nucleo_f746"), out / "firmware" / "firmware.elf").uart
    return out, uart


def _replay(master: int, slave: int, data: bytes, stop: threading.Event) -> None:
    while termios.tcgetattr(slave)[3] & termios.ICANON:  # until pyserial made the port raw
        if stop.wait(0.005):
            return
    for i in range(0, len(data), CHUNK):
        if stop.is_set():
            return
        os.write(master, data[i:i + CHUNK])
        time.sleep(PAUSE_S)


@contextmanager
def board_port(text: str) -> Iterator[str]:
    """A pty whose slave is the 'board's serial port': ``text`` arrives once it is opened."""
    master, slave = os.openpty()
    stop = threading.Event()
    writer = threading.Thread(target=_replay, args=(master, slave, text.encode("latin-1"), stop),
                              daemon=True)
    writer.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        writer.join(5)
        os.close(master)
        os.close(slave)


def monitor(text: str, *args: str) -> int:
    with board_port(text) as port:
        return main(["monitor", "--port", port, *args])


# the tail of an earlier run and undecodable bytes (a UART at reset) before the run itself
NOISE = "s=1 i=3 cyc=12\n@tp out s=1 cyc=9 hex=00\n\xff\xfe\x00\r\n"


def test_replayed_board_gives_the_emulators_report(built: tuple[Path, str], capsys) -> None:
    out, uart = built
    build_report = (out / "report.json").read_bytes()
    assert monitor(NOISE + uart.replace("\n", "\r\n"), "--out", str(out), "--timeout",
                   "60") == 0
    printed = capsys.readouterr()
    assert "bit-exact True" in printed.out and "on hardware" in printed.out
    emulated, board = json.loads(build_report), json.loads((out / "board" / "report.json")
                                                           .read_text())
    run = board["run"]
    assert run["emulator"] == "hardware" and run["cycles_are_estimate"] is False
    assert run["bit_exact"] is True and run["mismatches"] == [] and run["samples"] == 2
    # the same lines through the same parser: the same figures as the emulated run
    assert run["cycles_per_inference"] == emulated["run"]["cycles_per_inference"]
    assert [x["cycles"] for x in board["layers"]] == [x["cycles"] for x in emulated["layers"]]
    assert board["firmware"]["stack_peak_bytes"] == emulated["firmware"]["stack_peak_bytes"]
    assert run["latency_ms_at_clock"] == pytest.approx(
        run["cycles_per_inference"] / 216e6 * 1e3)
    assert run["emulated"]["emulator"] == "unicorn" and board["ok"] is True
    assert {p.name for p in (out / "board").iterdir()} == {
        "report.json", "report.md", "report.html", "junit.xml", "uart.log"}
    assert "@tp end status=0" in (out / "board" / "uart.log").read_text()
    assert (out / "report.json").read_bytes() == build_report  # the build's report untouched
    manifest = json.loads((out / ".tinyprune-manifest.json").read_text())
    assert "board/report.json" in manifest["files"] and "board" in manifest["dirs"]


def test_a_changed_output_byte_fails_with_the_mismatch(built: tuple[Path, str], capsys) -> None:
    out, uart = built
    hexes = [line.split("hex=")[1] for line in uart.splitlines() if line.startswith("@tp out")]
    flipped = hexes[1][:-2] + f"{int(hexes[1][-2:], 16) ^ 1:02x}"
    assert monitor(uart.replace(hexes[1], flipped), "--out", str(out)) == 1
    assert "firmware outputs differ from the TFLite Micro reference on hardware" in \
        capsys.readouterr().err
    run = json.loads((out / "board" / "report.json").read_text())["run"]
    assert run["bit_exact"] is False
    assert [(m["sample"], m["input"], m["row"]) for m in run["mismatches"]] == [(1, "sample", 1)]


def test_a_garbled_line_fails_and_leaves_no_board_report(built: tuple[Path, str],
                                                         capsys) -> None:
    out, uart = built
    assert monitor(uart, "--out", str(out)) == 0
    assert (out / "board" / "report.json").is_file()
    lines = uart.splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if line.startswith("@tp out"))
    lines[n] = lines[n][:30] + "\xfd" + lines[n][31:]  # one byte hit by noise
    assert monitor("".join(lines), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert f"result line {n + 1}: field " in err and "garbled" in err and "--baud" in err
    assert not (out / "board").exists()  # no earlier success stays beside a failure
    assert (out / "report.json").is_file()


def test_timeout_says_what_arrived(built: tuple[Path, str], capsys) -> None:
    out, uart = built
    started = time.monotonic()
    assert monitor(uart[:uart.index("@tp out")], "--out", str(out), "--timeout", "2") == 1
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert "the firmware started but sent no '@tp end' line within 2 s" in err
    assert not (out / "board").exists()
    assert monitor("", "--board", "nucleo_f746", "--timeout", "1") == 1
    assert "no result lines within 1 s" in capsys.readouterr().err


def test_without_a_build_the_results_are_summarised(built: tuple[Path, str], capsys) -> None:
    out, uart = built
    emulated = json.loads((out / "report.json").read_text())
    assert monitor(uart, "--board", "nucleo_f746", "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert results["cycles_per_inference"] == emulated["run"]["cycles_per_inference"]
    assert results["layer_cycles"] == [x["cycles"] for x in emulated["layers"]]
    assert len(results["samples"]) == 2 and results["status"] == 0
    assert monitor(uart, "--board", "nucleo_f746") == 0
    text = capsys.readouterr().out
    assert f"{emulated['run']['cycles_per_inference']:,} per inference" in text
    assert " ms at 216 MHz" in text


def test_firmware_of_another_build_is_refused(built: tuple[Path, str], capsys) -> None:
    out, uart = built
    other = uart.replace("model=kws_ref_model", "model=vww_96_int8")
    assert monitor(other, "--out", str(out)) == 1
    assert "the board runs firmware of model vww_96_int8" in capsys.readouterr().err
    assert not (out / "board").exists()


def test_reset_without_a_probe_is_exit_3(built: tuple[Path, str], capsys) -> None:
    """--reset goes through the real pyocd once the port is open: no probe here."""
    out, uart = built
    assert monitor(uart, "--out", str(out), "--reset") == 3
    assert "no debug probe found" in capsys.readouterr().err


def test_flash_a_build_without_a_probe_is_exit_3(built: tuple[Path, str], capsys) -> None:
    out, _ = built
    assert main(["flash", "--out", str(out)]) == 3  # the board comes from the build's report
    assert "no debug probe found (pyocd looked for" in capsys.readouterr().err
