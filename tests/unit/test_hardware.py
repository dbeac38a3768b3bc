"""Real-board support without a board: the serial result stream, the monitor's reading loop over
a fake port, and `tinyprune flash` (the real pyocd without a probe; a fake pyocd for the call
sequence). Pseudo-terminal replays of a real firmware are in tests/e2e/test_monitor.py."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.errors import CheckFailed, HardwareError, ToolMissing, UsageError
from tinyprune.firmware import load_board
from tinyprune.hardware import flash as flashing
from tinyprune.hardware.monitor import read_results
from tinyprune.protocol import ResultStream, parse_results

RUN = """@tp begin v=1 model=m board=nucleo_f746 samples=2 layers=2
@tp layer s=0 i=0 cyc=10
@tp layer s=0 i=1 cyc=20
@tp out s=0 cyc=31 hex=00ff7f
@tp layer s=1 i=0 cyc=12
@tp layer s=1 i=1 cyc=22
@tp out s=1 cyc=35 hex=0102ff
@tp stack peak=120 size=8192
@tp end status=0
"""


def stream_of(text: str) -> ResultStream:
    stream = ResultStream(serial=True)
    for line in text.splitlines():
        if stream.feed(line):
            break
    return stream


# ---- the serial stream -------------------------------------------------------------------------
@pytest.mark.parametrize("before", [
    "",
    "\ufffd\ufffd\x00junk from the reset\n",  # undecodable bytes, as a UART gives at reset
    "@tp layer s=7 i=1 cyc=99\n@tp out s=7 cyc=1 hex=zz\n",  # the tail of a run joined late
    "@tp begin v=1 model=m board=nucleo_f746 samples=2 layers=2\n@tp layer s=0 i=0 cyc=5\n",
])
def test_serial_stream_reads_the_run_after_noise(before: str) -> None:
    stream = stream_of(before + RUN)
    assert stream.done
    results = stream.result()
    assert results == parse_results(RUN)
    assert results.mean_layer_cycles == [11, 21]
    assert results.outputs == [b"\x00\xff\x7f", b"\x01\x02\xff"]


def test_serial_stream_finds_the_marker_behind_junk_bytes() -> None:
    junk = RUN.replace("@tp begin", "\ufffd\x00@tp begin", 1)
    assert stream_of(junk).result() == parse_results(RUN)
    with pytest.raises(CheckFailed, match="'@tp layer' before '@tp begin'"):
        parse_results(junk)  # an emulator's capture from reset has no junk: strict


@pytest.mark.parametrize(("text", "message"), [
    (RUN.replace("hex=0102ff", "hex=01\ufffdff"), r"result line 7: field hex: expected hex"),
    (RUN.replace("cyc=22", "cyc=2\ufffd"), r"result line 6: field cyc: expected an integer"),
    (RUN.replace("@tp layer s=1 i=0", "@tp lay\ufffd s=1 i=0"), r"line 5: expected a known kind"),
    ("noise\n@tp fault kind=hard pc=0x08000100\n", r"firmware faulted: HardFault: .*kind=hard"),
])
def test_serial_stream_refuses_a_garbled_result_line(text: str, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        stream_of(text)


def test_serial_stream_without_end_is_incomplete() -> None:
    stream = stream_of(RUN.replace("@tp end status=0\n", ""))
    assert stream.started and not stream.done
    with pytest.raises(CheckFailed, match="no '@tp end'"):
        stream.result()


# ---- the monitor's reading loop over a fake port -----------------------------------------------
class FakePort:
    """Hands out ``chunks`` one read at a time (an empty chunk: the read timed out)."""

    def __init__(self, chunks: list[bytes], clock: list[float]) -> None:
        self.chunks, self.clock, self.closed = list(chunks), clock, False
        self.in_waiting = 0

    def read(self, size: int = 1) -> bytes:
        self.clock[0] += 0.1
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed = True


def fake_monitor(chunks: list[bytes], timeout: float = 5.0) -> tuple[FakePort, object]:
    clock = [0.0]
    port = FakePort(chunks, clock)
    capture = read_results("/dev/fake", timeout=timeout, opener=lambda name, baud: port,
                           clock=lambda: clock[0])
    return port, capture


def test_monitor_reads_lines_split_across_reads() -> None:
    data = ("boot\r\n" + RUN.replace("\n", "\r\n")).encode()
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]
    port, capture = fake_monitor([*chunks[:5], b"", *chunks[5:], b"idle\n"])
    assert capture.results == parse_results(RUN)  # type: ignore[attr-defined]
    assert capture.lines[0] == "boot"  # type: ignore[attr-defined]
    assert port.closed


@pytest.mark.parametrize(("chunks", "message"), [
    ([], r"no result lines within 2 s on /dev/fake \(nothing received\).*--reset"),
    ([b"\xff\xfe garbage at the wrong baud rate\n"], r"no '@tp begin' line within 2 s.*baud"),
    ([RUN.encode()[:120]], r"the firmware started but sent no '@tp end' line within 2 s"),
])
def test_monitor_times_out_saying_what_arrived(chunks: list[bytes], message: str) -> None:
    with pytest.raises(HardwareError, match=message):
        fake_monitor(chunks, timeout=2.0)


def test_monitor_garbled_line_names_the_port_and_the_line() -> None:
    with pytest.raises(HardwareError, match=r"/dev/fake: result line 4: field hex.*--baud"):
        fake_monitor([RUN.replace("hex=00ff7f", "hex=00f\xff7f").encode("latin-1")])


def test_monitor_kernel_status_fails() -> None:
    text = RUN.replace("@tp out s=1 cyc=35 hex=0102ff\n", "").replace("status=0", "status=3")
    with pytest.raises(CheckFailed, match=r"reported status 3.*layer 2"):
        fake_monitor([text.encode()])


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["monitor", "--port", "/nonexistent/ttyX"], 2, "--port /nonexistent/ttyX: cannot open"),
    (["monitor", "--port", "/dev/null", "--timeout", "0"], 2, "--timeout: expected seconds > 0"),
    (["monitor", "--port", "/dev/null", "--baud", "0"], 2, "--baud: expected a baud rate > 0"),
    (["monitor", "--port", "/dev/null", "--reset"], 2, "--reset: needs --board"),
    (["monitor", "--port", "/dev/null", "--reset", "--board", "mps2_an386"], 2,
     "mps2_an386 has no [flash_tool]"),
])
def test_monitor_usage_errors(args: list[str], code: int, needle: str, capsys) -> None:
    assert main(args) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_monitor_out_must_be_a_tinyprune_build(tmp_path: Path, capsys) -> None:
    assert main(["monitor", "--port", "/dev/null", "--out", str(tmp_path)]) == 2
    assert "no report.json" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ---- flash ---------------------------------------------------------------------------------------
def arm_elf(path: Path, address: int, payload: bytes = b"\x00\x00\x05\x20\x09\x00\x00\x08") -> Path:
    """A minimal 32-bit little-endian Arm ELF with one loadable segment at ``address``."""
    header_size, ph_size = 52, 32
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIIIIIHHHHHH", 2, 40, 1, address | 1, header_size, 0,
                                 0x05000400, header_size, ph_size, 1, 40, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, header_size + ph_size, address, address, len(payload),
                       len(payload), 5, 4)
    path.write_bytes(header + phdr + payload)
    return path


def test_flash_without_a_probe_is_exit_3_naming_what_pyocd_looked_for(tmp_path: Path,
                                                                        capsys) -> None:
    """The real pyocd, no mock: nothing is attached to this machine."""
    elf = arm_elf(tmp_path / "fw.elf", 0x0800_0000)
    assert main(["flash", "--board", "nucleo_f746", "--elf", str(elf)]) == 3
    err = capsys.readouterr().err
    assert "no debug probe found (pyocd looked for " in err
    assert "CMSIS-DAP" in err and "ST-Link" in err and "connect the board" in err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize(("board", "make", "needle"), [
    ("nucleo_f746", lambda p: arm_elf(p, 0x0000_0000), "outside nucleo_f746's flash 0x08000000"),
    ("nucleo_f746", lambda p: arm_elf(p, 0x080F_FFFC), "outside nucleo_f746's flash"),
    ("nucleo_f746", lambda p: p.write_bytes(b"MZ\x90\x00") and p, "not an ELF file"),
    ("nucleo_f746", lambda p: p.write_bytes(b"\x7fELF\x01") and p, "cannot read the ELF"),
    ("nucleo_f746", lambda p: p.parent / "missing.elf", "no such file"),
    ("mps2_an500", lambda p: arm_elf(p, 0x0), "mps2_an500 has no [flash_tool]"),
])
def test_flash_refuses_bad_input_with_exit_2(board: str, make, needle: str, tmp_path: Path,
                                             capsys) -> None:
    elf = make(tmp_path / "fw.elf")
    assert main(["flash", "--board", board, "--elf", str(elf)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_flash_finds_the_build_or_says_which(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    board = load_board("nucleo_f746")
    with pytest.raises(UsageError, match="no build for nucleo_f746 under build/"):
        flashing.find_firmware(board, None, None)
    for name in ("a-nucleo_f746", "b-nucleo_f746", "c-nucleo_f401re"):
        (tmp_path / "build" / name / "firmware").mkdir(parents=True)
        arm_elf(tmp_path / "build" / name / "firmware" / "firmware.elf", 0x0800_0000)
    with pytest.raises(UsageError, match="several builds for nucleo_f746"):
        flashing.find_firmware(board, None, None)
    one = flashing.find_firmware(load_board("nucleo_f401re"), None, None)
    assert one == Path("build/c-nucleo_f401re/firmware/firmware.elf")
    (tmp_path / "build" / "a-nucleo_f746" / "report.json").write_text(
        '{"board": {"name": "nucleo_f401re"}}')
    assert main(["flash", "--board", "nucleo_f746", "--out", "build/a-nucleo_f746"]) == 2
    assert "was built for nucleo_f401re, not nucleo_f746" in capsys.readouterr().err
    assert main(["flash", "--out", "build/b-nucleo_f746", "--elf", "x.elf"]) == 2
    assert "--elf and --out: give one" in capsys.readouterr().err
    assert main(["flash", "--out", "build/empty"]) == 2
    assert "--board: required" in capsys.readouterr().err


class FakeError(Exception):
    pass


class FakePyocd:
    """Records the calls tinyprune makes; ``fail`` names a call that raises."""

    errors = (FakeError,)

    def __init__(self, probes: int = 1, supported: bool = True, fail: str = "") -> None:
        self.calls: list[tuple] = []
        self._probes = [flashing.Probe(f"066DFF{i}", "STM32 STLink") for i in range(probes)]
        self.supported, self.fail = supported, fail

    def probes(self, unique_id: str | None) -> list[flashing.Probe]:
        self.calls.append(("probes", unique_id))
        return [p for p in self._probes if unique_id is None or unique_id in p.unique_id]

    def probe_kinds(self) -> str:
        return "CMSIS-DAP / ST-Link"

    def supports(self, target: str) -> bool:
        self.calls.append(("supports", target))
        return self.supported

    @contextmanager
    def session(self, probe: flashing.Probe, target: str) -> Iterator[FakePyocd]:
        self.calls.append(("open", probe.unique_id, target))
        yield self
        self.calls.append(("close",))

    def program(self, elf: Path) -> None:
        self.calls.append(("program", elf.name))
        if self.fail == "program":
            raise FakeError("flash algorithm returned 1")

    def reset(self) -> None:
        self.calls.append(("reset",))


def test_flash_call_sequence(tmp_path: Path) -> None:
    api, started = FakePyocd(probes=2), []
    elf = arm_elf(tmp_path / "fw.elf", 0x0800_0000)
    done = flashing.flash_elf(load_board("nucleo_f746"), elf, probe="FF1", api=api,
                              on_start=started.append)
    assert api.calls == [("probes", "FF1"), ("supports", "stm32f746zgtx"),
                         ("open", "066DFF1", "stm32f746zgtx"), ("program", "fw.elf"),
                         ("reset",), ("close",)]
    assert done.probe.unique_id == "066DFF1" and done.bytes_programmed == 8
    assert started == [done.probe]
    reset = FakePyocd()
    flashing.reset_board(load_board("nucleo_f401re"), api=reset)
    assert [c[0] for c in reset.calls] == ["probes", "supports", "open", "reset", "close"]
    assert reset.calls[2][2] == "stm32f401retx"


@pytest.mark.parametrize(("api", "error", "needle"), [
    (FakePyocd(probes=0), ToolMissing, "no debug probe found (pyocd looked for CMSIS-DAP"),
    (FakePyocd(probes=2), UsageError, "several debug probes connected: 066DFF0 (STM32 STLink)"),
    (FakePyocd(supported=False), ToolMissing, "pyocd pack install stm32f746zgtx"),
    (FakePyocd(fail="program"), HardwareError,
     "flashing fw.elf to nucleo_f746 through STM32 STLink failed: flash algorithm returned 1"),
])
def test_flash_failures(api: FakePyocd, error: type, needle: str, tmp_path: Path) -> None:
    elf = arm_elf(tmp_path / "fw.elf", 0x0800_0000)
    with pytest.raises(error) as exc:
        flashing.flash_elf(load_board("nucleo_f746"), elf, api=api)
    assert needle in str(exc.value)
    assert ("program", "fw.elf") not in api.calls or api.fail == "program"
