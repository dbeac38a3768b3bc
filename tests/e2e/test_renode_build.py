"""`tinyprune build --emulator renode`: a real build (the MLPerf Tiny KWS model on nucleo_f746).

Without Renode (always so here: it is in neither PyPI nor Debian) the build writes the firmware
and the Renode scripts, no report, and exits 3 saying how to get Renode. With a stand-in
``renode-test`` that runs the suite's ELF on unicorn and writes the UART log where the suite
puts it, the build reads that log with the same parser and reports the run as Renode's. With the
real ``renode-test`` on PATH, the last test runs the suite on Renode itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

from tinyprune.cli import main

ROOT = Path(__file__).resolve().parents[2]
KWS = ROOT / "tests" / "fixtures" / "mlperf_tiny" / "kws_ref_model.tflite"
BUILD = ["build", "--board", "nucleo_f746", "--model", str(KWS), "--samples", "2",
         "--random-samples", "2", "--emulator", "renode"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]

STAND_IN = """#!{python}
# renode-test stand-in: runs the suite's ELF on unicorn, writes what it printed to the suite's
# UART log, checks the suite's result waits against it
import re, sys
from pathlib import Path
from robot.utils import unescape
from tinyprune.emulator import run_elf
from tinyprune.firmware import load_board

robot = Path(sys.argv[1])
assert sys.argv[2] == "-r", sys.argv
text = robot.read_text()
var = dict(re.findall(r"^\\$\\{{(\\w+)\\}}\\s+(\\S+)$", text, re.M))
def path(v):
    return robot.parent / var[v].replace("${{CURDIR}}/", "")
board = re.search(r'mach create "(\\w+)"', text).group(1)
uart = run_elf(load_board(board), path("ELF")).uart
lines = uart.splitlines()
for wait in re.findall(r"Wait For Line On Uart +(\\S.*?) {{2,}}treatAsRegex=true", text):
    if not any(re.search(unescape(wait), line) for line in lines):
        print("no line matches", wait)
        sys.exit(1)
path("UART_LOG").write_text(uart)
"""


def _tools_without_renode(tmp_path: Path) -> str:
    """PATH as it is, minus any renode-test on it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if os.path.isdir(d):
            for name in os.listdir(d):
                if name != "renode-test" and not (bindir / name).exists():
                    os.symlink(os.path.join(d, name), bindir / name)
    return str(bindir)


def test_without_renode_the_scripts_are_written_and_it_exits_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", _tools_without_renode(tmp_path))
    out = tmp_path / "kws"
    assert main([*BUILD, "--out", str(out)]) == 3
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("tinyprune: error"))
    assert "renode-test not found" in line and "https://renode.io" in line and "PyPI" in line
    assert f"renode-test {out / 'renode' / 'nucleo_f746.robot'}" in line
    assert "Traceback" not in err
    assert {p.name for p in (out / "renode").iterdir()} == \
        {"nucleo_f746.repl", "nucleo_f746.resc", "nucleo_f746.robot"}
    assert (out / "firmware" / "firmware.elf").is_file()
    assert not list(out.glob("report*")) and not (out / "junit.xml").exists()
    assert not (out / ".tinyprune-partial").exists()
    robot = (out / "renode" / "nucleo_f746.robot").read_text()
    assert re.search(r"^\$\{ELF\}\s+\$\{CURDIR\}/\.\./firmware/firmware\.elf$", robot, re.M)


def test_renode_run_through_renode_test_gives_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = Path(_tools_without_renode(tmp_path))
    tool = bindir / "renode-test"
    tool.write_text(STAND_IN.format(python=sys.executable))
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    out = tmp_path / "kws"
    assert main([*BUILD, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    run = report["run"]
    assert run["emulator"] == "renode" and run["bit_exact"] is True
    assert run["cycles_are_estimate"] is True and run["cycle_model"].startswith("renode:")
    assert run["cycles_per_inference"] > 0
    assert (out / "renode" / "uart.log").read_text().startswith("@tp begin v=1")


@pytest.mark.skipif(shutil.which("renode-test") is None,
                    reason="renode-test not on PATH: Renode is in neither PyPI nor Debian "
                           "(https://renode.io)")
def test_on_renode_itself(tmp_path: Path) -> None:  # pragma: no cover - needs Renode
    out = tmp_path / "kws"
    assert main([*BUILD, "--out", str(out)]) == 0
    run = json.loads((out / "report.json").read_text())["run"]
    assert run["emulator"] == "renode" and run["bit_exact"] is True
    assert run["cycles_per_inference"] > 0
