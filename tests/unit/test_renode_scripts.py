"""The Renode scripts `--emulator renode` writes, checked against what Renode's parsers need.

Renode is not installed here (it is in neither PyPI nor Debian), so the files are checked the way
Renode would read them: the ``.repl`` by a parser of the platform-description grammar with the
constructor parameters of every model it names (from renode-infrastructure's sources, listed in
MODELS), the Python peripherals by running them with Renode's request fields while doing what
the tinyprune BSP does, the ``.robot`` suite by Robot Framework's own parser with Renode's
keywords and their parameter names, the ``.resc`` line by line against the Monitor commands it
uses. ``renode-test`` itself is run by tests/e2e/test_renode_build.py when it is on PATH.
"""

from __future__ import annotations

import ast
import itertools
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from robot.api import get_model
from robot.libraries.BuiltIn import BuiltIn
from robot.parsing.model.statements import KeywordCall
from robot.utils import unescape

from tinyprune.emulator.renode_backend import (
    FAMILIES,
    RenodeScripts,
    cpu_type,
    require_renode_test,
    run_robot,
    write_scripts,
)
from tinyprune.errors import CheckFailed, ToolMissing, UsageError
from tinyprune.firmware import Board, list_boards, load_board

RENODE_BOARDS = [b for b in list_boards() if "renode" in b.emulator.backends]


@dataclass(frozen=True)
class Model:
    """A Renode peripheral model: constructor parameters (required / optional, ``machine``
    left out: Renode passes it), properties a .repl may set, and its size when the model knows
    it (IKnownSize: registered at a bare address; otherwise it needs ``<address, +size>``)."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    size: int | None = None
    cpu: bool = False


# renode-infrastructure: src/Emulator/Main/Peripherals/Memory/{MappedMemory,ArrayMemory}.cs,
# src/Emulator/Cores/Arm-M/{NVIC,CortexM,DWT}.cs, src/Emulator/Peripherals/Peripherals/UART/
# {STM32F7_USART,STM32_UART}.cs, src/Emulator/Main/Peripherals/Python/PythonPeripheral.cs
MODELS = {
    "Memory.MappedMemory": Model(frozenset({"size"}),
                                 frozenset({"segmentSize", "sharedMemoryFileRoot"})),
    "Memory.ArrayMemory": Model(frozenset({"size"}), frozenset({"initialValue"})),
    "IRQControllers.NVIC": Model(frozenset(), frozenset({"systickFrequency", "priorityMask",
                                                         "haltSystickOnDeepSleep"}), 0x1000),
    "CPU.CortexM": Model(frozenset({"cpuType", "nvic"}),
                         frozenset({"cpuId", "id", "endianness", "fpuInterruptNumber",
                                    "numberOfMPURegions", "enableTrustZone", "numberOfSAURegions",
                                    "numberOfIDAURegions", "isCpuWaitSignalSet",
                                    "PerformanceInMips"}), cpu=True),
    "Miscellaneous.DWT": Model(frozenset({"frequency"}), size=0x1000),
    "UART.STM32F7_USART": Model(frozenset({"frequency"}), frozenset({"lowPowerMode"}), 0x400),
    "UART.STM32_UART": Model(frozenset(), frozenset({"frequency"})),
    "Python.PythonPeripheral": Model(frozenset({"size"}),
                                     frozenset({"initable", "script", "filename"})),
}
# Renode's cpuType names of the Cortex-M cores (renode: platforms/cpus/*.repl)
CPU_TYPES = {"cortex-m0", "cortex-m0+", "cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m7",
             "cortex-m23", "cortex-m33", "cortex-m55", "cortex-m85"}


@dataclass
class Entry:
    name: str
    model: str
    where: str
    params: dict[str, str] = field(default_factory=dict)
    connections: list[str] = field(default_factory=list)


HEADER = re.compile(r"^(?P<name>[A-Za-z_]\w*): (?P<model>[A-Za-z]\w*(?:\.\w+)+) @ (?P<where>.+)$")
PARAM = re.compile(r"^    (?P<key>[A-Za-z_]\w*): (?P<value>.+)$")
CONNECTION = re.compile(r"^    (?:IRQ|\[\d+(?:-\d+)?\]|\d+)? ?-> (?P<target>\w+)@\d+$")
VALUE = re.compile(r'^(?:"[^"\n]*"|0x[0-9A-Fa-f]+|\d+|true|false|[A-Za-z_]\w*)$')


def parse_repl(text: str) -> list[Entry]:
    """The entries of a .repl: the subset of Renode's grammar (Antmicro.Renode.PlatformDescription)
    the generated files use, strict: any other line fails."""
    entries: list[Entry] = []
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.startswith("//"):
            continue
        if (m := HEADER.match(line)) is not None:
            entries.append(Entry(m["name"], m["model"], m["where"]))
            continue
        assert entries, f"an attribute before any entry: {line!r}"
        if (m := CONNECTION.match(line)) is not None:
            entries[-1].connections.append(m["target"])
            continue
        m = PARAM.match(line)
        assert m is not None, f"not Renode platform syntax: {line!r}"
        key, value = m["key"], m["value"]
        assert key not in entries[-1].params, f"{entries[-1].name}: {key} twice"
        if value == "'''":  # a multi-line string ends at a line that is ''' alone
            body = []
            for inner in lines:
                if inner == "'''":
                    break
                assert "'''" not in inner
                body.append(inner)
            else:
                pytest.fail(f"{entries[-1].name}: unterminated ''' string")
            value = "\n".join(body) + "\n"
        else:
            assert VALUE.match(value), f"{entries[-1].name}.{key}: not a Renode value: {value!r}"
        entries[-1].params[key] = value
    return entries


def _int(value: str) -> int:
    return int(value, 0)


def address_range(entry: Entry) -> tuple[int, int] | None:
    """(start, end) on the system bus; None for a CPU (registered at ``sysbus`` alone)."""
    model = MODELS[entry.model]
    if entry.where == "sysbus":
        assert model.cpu, f"{entry.name}: only a CPU registers at bare sysbus"
        return None
    if (m := re.fullmatch(r"sysbus <(0x[0-9A-F]+), \+(0x[0-9A-F]+)>", entry.where)) is not None:
        return _int(m[1]), _int(m[1]) + _int(m[2])
    m = re.fullmatch(r"sysbus (0x[0-9A-F]{8})", entry.where)
    assert m is not None, f"{entry.name}: registration {entry.where!r}"
    size = model.size if model.size is not None else (
        _int(entry.params["size"]) if "size" in model.required else None)
    assert size is not None, f"{entry.name}: {entry.model} has no known size: give <addr, +size>"
    return _int(m[1]), _int(m[1]) + size


@pytest.fixture(scope="module", params=[b.name for b in RENODE_BOARDS])
def scripts(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Board, RenodeScripts]:
    board = load_board(request.param)
    build = tmp_path_factory.mktemp(board.name)
    (build / "firmware").mkdir()
    (build / "firmware" / "firmware.elf").write_bytes(b"\x7fELF")
    return board, write_scripts(board, build / "firmware" / "firmware.elf", build / "renode")


def test_renode_boards_are_described() -> None:
    """Every board that declares Renode support has a platform for its family (else
    --emulator renode would be refused for it)."""
    assert {b.name for b in RENODE_BOARDS} >= {"nucleo_f746", "nucleo_f401re"}
    assert all(b.family in FAMILIES for b in RENODE_BOARDS)


def test_repl_is_renode_platform_syntax_with_known_models(
        scripts: tuple[Board, RenodeScripts]) -> None:
    s = scripts[1]
    entries = parse_repl(s.repl.read_text())
    names = {e.name for e in entries}
    assert len(names) == len(entries)
    for e in entries:
        assert e.model in MODELS, f"{e.name}: {e.model} is not a model this test knows"
        model = MODELS[e.model]
        assert model.required <= set(e.params), f"{e.name}: needs {model.required}"
        assert set(e.params) <= model.required | model.optional, f"{e.name}: {e.params}"
        assert all(target in names for target in e.connections)
    cpu = next(e for e in entries if e.model == "CPU.CortexM")
    assert cpu.params["nvic"] in names and cpu.params["cpuType"].strip('"') in CPU_TYPES
    ranges = sorted((r, e.name) for e in entries if (r := address_range(e)) is not None)
    for ((_, end), a), ((start, _), b) in itertools.pairwise(ranges):
        assert end <= start, f"{a} overlaps {b}"
    for e in entries:
        if e.model == "Python.PythonPeripheral":
            assert e.params["initable"] == "true"  # the scripts set their state in IsInit


def test_repl_is_the_board(scripts: tuple[Board, RenodeScripts]) -> None:
    """Flash and RAM exactly the board file's, the core, a DWT counting at the clock, and
    Renode's time at one instruction per cycle (PerformanceInMips = MHz)."""
    board, s = scripts
    by_name = {e.name: e for e in parse_repl(s.repl.read_text())}
    for region, name in ((board.flash, "flash"), (board.ram, "sram")):
        assert address_range(by_name[name]) == (region.origin, region.origin + region.length)
    cpu = by_name["cpu"]
    assert cpu.params["cpuType"] == f'"{cpu_type(board)}"'
    assert board.clock_hz % 1_000_000 == 0
    assert _int(cpu.params["PerformanceInMips"]) * 1_000_000 == board.clock_hz
    dwt = by_name["dwt"]
    assert address_range(dwt) == (0xE0001000, 0xE0002000)  # CTRL, CYCCNT ... LAR at 0xFB0
    assert _int(dwt.params["frequency"]) == board.clock_hz
    uart = by_name[board.uart.instance.lower()]
    assert address_range(uart) is not None and address_range(uart)[0] == board.uart.base
    assert s.uart == f"sysbus.{uart.name}"
    assert _int(by_name["nvic"].params["systickFrequency"]) == board.clock_hz


def test_cpu_type_names() -> None:
    f746, f401 = load_board("nucleo_f746"), load_board("nucleo_f401re")
    assert (cpu_type(f746), cpu_type(f401)) == ("cortex-m7", "cortex-m4f")


class Request:
    """Renode's PythonRequest as a peripheral script sees it (PeripheralPythonEngine.cs)."""

    def __init__(self, kind: str, offset: int, value: int = 0) -> None:
        self.IsInit, self.IsRead, self.IsWrite = kind == "init", kind == "read", kind == "write"
        self.Offset, self.Value, self.Length = offset, value, 4


class Peripheral:
    """A Python peripheral of the .repl, run as Renode runs it: one scope for every request."""

    def __init__(self, script: str, size: int) -> None:
        tree = ast.parse(script)
        # IronPython 2.7 runs these: nothing Python-3-only
        assert not any(isinstance(n, ast.JoinedStr | ast.NamedExpr | ast.Nonlocal)
                       for n in ast.walk(tree))
        self.code = compile(tree, "<repl script>", "exec")
        self.scope: dict[str, object] = {"size": size}
        self.request("init", 0)

    def request(self, kind: str, offset: int, value: int = 0) -> int:
        req = Request(kind, offset, value)
        self.scope["request"] = req
        exec(self.code, self.scope)  # the generated script, as Renode runs it
        return int(req.Value)

    def read(self, offset: int) -> int:
        return self.request("read", offset)

    def write(self, offset: int, value: int) -> None:
        self.request("write", offset, value)


def _peripherals(s: RenodeScripts) -> dict[str, Peripheral]:
    return {e.name: Peripheral(e.params["script"], _int(e.params["size"]))
            for e in parse_repl(s.repl.read_text()) if e.model == "Python.PythonPeripheral"}


def test_rcc_lets_the_bsp_clock_setup_finish(scripts: tuple[Board, RenodeScripts]) -> None:
    """The waits of runtime/bsp/tp_stm32.h: HSIRDY after HSION, PLLRDY after PLLON, SWS = PLL
    after SW = PLL; enable registers read back."""
    rcc = _peripherals(scripts[1])["rcc"]
    cr, cfgr, apb1enr = 0x00, 0x08, 0x40
    assert rcc.read(cr) & 0x2  # HSI on and ready out of reset
    rcc.write(cr, rcc.read(cr) | 1)
    assert rcc.read(cr) & (1 << 1)
    assert not rcc.read(cr) & (1 << 25)
    rcc.write(cr, rcc.read(cr) | (1 << 24))
    assert rcc.read(cr) & (1 << 25)
    rcc.write(cfgr, (4 << 10) | (0 << 13))
    assert rcc.read(cfgr) & 0xC == 0
    rcc.write(cfgr, (rcc.read(cfgr) & ~0x3) | 0x2)
    assert rcc.read(cfgr) & 0xC == 0x8 and rcc.read(cfgr) >> 10 & 0x7 == 4
    rcc.write(apb1enr, 1 << 28 | 1 << 18)
    assert rcc.read(apb1enr) == 1 << 28 | 1 << 18
    rcc.write(cr, rcc.read(cr) & ~(1 << 24))  # PLL off: not ready any more
    assert not rcc.read(cr) & (1 << 25)


def test_pwr_lets_the_f7_over_drive_finish(scripts: tuple[Board, RenodeScripts]) -> None:
    """runtime/bsp/stm32f7: ODRDY after ODEN, ODSWRDY after ODSWEN; voltage scaling ready."""
    pwr = _peripherals(scripts[1])["pwr"]
    cr, csr = 0x00, 0x04
    assert pwr.read(csr) & (1 << 14) and not pwr.read(csr) & (0x3 << 16)
    pwr.write(cr, 0x3 << 14)
    assert pwr.read(cr) == 0x3 << 14
    pwr.write(cr, pwr.read(cr) | 1 << 16)
    assert pwr.read(csr) & (1 << 16) and not pwr.read(csr) & (1 << 17)
    pwr.write(cr, pwr.read(cr) | 1 << 17)
    assert pwr.read(csr) & (1 << 17)


# renode: src/Renode/RobotFrameworkEngine/{RenodeKeywords,UartKeywords}.cs, parameter names
RENODE_KEYWORDS = {
    "Execute Command": {"command", "machine"},
    "Start Emulation": set(),
    "Create Terminal Tester": {"uart", "timeout", "machine", "endLineOption",
                               "defaultPauseEmulation", "defaultWaitForEcho",
                               "defaultMatchNextLine", "binaryMode"},
    "Wait For Line On Uart": {"content", "timeout", "testerId", "treatAsRegex",
                              "includeUnfinishedLine", "pauseEmulation", "matchNextLine"},
}
FIRMWARE_LINES = (
    "@tp begin v=1 model=kws_ref_model board={board} samples=10 layers=13",
    "@tp layer s=0 i=0 cyc=123",
    "@tp out s=0 cyc=4567 hex=80ff",
    "@tp stack peak=1032 size=8192",
    "@tp end status=0",
)


def _robot_calls(path: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Keyword calls per test case / keyword, parsed by Robot Framework; its parse errors fail."""
    model = get_model(str(path))
    errors = [e for node in ast.walk(model) for e in getattr(node, "errors", ()) or ()]
    assert not errors, errors
    calls: dict[str, list[tuple[str, list[str]]]] = {}
    for section in model.sections:
        for block in getattr(section, "body", []):
            name = getattr(block, "name", None)
            if name is None or not hasattr(block, "body"):
                continue
            calls[name] = [(s.keyword, list(s.args)) for s in block.body
                           if isinstance(s, KeywordCall)]
    return calls


def _unescape(arg: str) -> str:
    """What Robot hands a keyword for a cell (its own unescaping: two backslashes are one,
    a backslash before an ordinary character is dropped)."""
    return str(unescape(arg))


def test_robot_suite_parses_and_uses_renode_keywords(scripts: tuple[Board, RenodeScripts]) -> None:
    board, s = scripts
    calls = _robot_calls(s.robot)
    local = set(calls)
    for body in calls.values():
        for keyword, args in body:
            if keyword in local:
                continue
            if keyword in RENODE_KEYWORDS:
                named = {a.split("=", 1)[0] for a in args if re.match(r"^\w+=", a)}
                assert named <= RENODE_KEYWORDS[keyword], (keyword, named)
            else:
                assert hasattr(BuiltIn, keyword.lower().replace(" ", "_")), keyword
    test = calls["Firmware Prints Its Results"]
    assert ("Start Emulation", []) in test
    waits = [_unescape(args[0]) for kw, args in test if kw == "Wait For Line On Uart"]
    lines = [line.format(board=board.name) for line in FIRMWARE_LINES]
    # the waits find the firmware's lines in order (begin, stack, end), and only those
    position = 0
    for pattern in waits:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found and found[0] >= position, pattern
        position = found[0] + 1
    assert not re.search(waits[0], lines[0].replace(board.name, "other_board"))
    status = next(_unescape(args[1]) for kw, args in test if kw == "Should Match Regexp")
    assert re.search(status, "@tp end status=0\r") and not re.search(status, "@tp end status=3")


def test_robot_and_resc_name_files_that_exist(scripts: tuple[Board, RenodeScripts]) -> None:
    """Paths relative to the scripts (${CURDIR}, $ORIGIN): a build folder can move."""
    s = scripts[1]
    robot = s.robot.read_text()
    variables = dict(re.findall(r"^\$\{(\w+)\}\s+(\S+)$", robot, re.M))
    for key in ("PLATFORM", "ELF"):
        assert variables[key].startswith("${CURDIR}/")
        assert (s.folder / variables[key].removeprefix("${CURDIR}/")).resolve().is_file()
    assert variables["UART"] == s.uart
    assert str(s.folder) not in robot and str(s.folder) not in s.resc.read_text()
    resc = [line for line in s.resc.read_text().splitlines() if line and not line.startswith("#")]
    commands = {
        r'^:(name|description): .+$', r"^using sysbus$", r'^\$name\?="\w+"$',
        r"^mach create \$name$", r"^machine LoadPlatformDescription \$ORIGIN/\S+\.repl$",
        r"^\$elf\?=\$ORIGIN/\S+\.elf$", r"^showAnalyzer sysbus\.\w+$", r"^macro reset$", r'^"""$',
        r"^    sysbus LoadELF \$elf$", r"^runMacro \$reset$",
    }
    for line in resc:
        assert any(re.match(c, line) for c in commands), f"not a Monitor line: {line!r}"
    for line in resc:
        if (m := re.match(r"^(?:machine LoadPlatformDescription |\$elf\?=)\$ORIGIN/(\S+)$",
                          line)) is not None:
            assert (s.folder / m[1]).resolve().is_file(), line
    assert resc.count('"""') == 2


def test_a_board_without_renode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--emulator renode: board mps2_an500 supports"):
        write_scripts(load_board("mps2_an500"), tmp_path / "x.elf", tmp_path / "renode")
    assert not (tmp_path / "renode").exists()


# --- run_robot with a stand-in renode-test (the real one: tests/e2e/test_renode_build.py) ---

def _stand_in(tmp_path: Path, body: str) -> str:
    tool = tmp_path / "bin" / "renode-test"
    tool.parent.mkdir(exist_ok=True)
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool)


def _scripts(tmp_path: Path) -> RenodeScripts:
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "firmware.elf").write_bytes(b"\x7fELF")
    return write_scripts(load_board("nucleo_f746"), tmp_path / "firmware" / "firmware.elf",
                         tmp_path / "renode")


def test_run_robot_returns_the_uart_log(tmp_path: Path) -> None:
    s = _scripts(tmp_path)
    (s.folder / "uart.log").write_text("stale\n")  # a log of an earlier run is not read
    tool = _stand_in(tmp_path, '[ "$1" = "$PWD/nucleo_f746.robot" ] && [ "$2" = -r ] || exit 9\n'
                     'printf "@tp begin v=1\\n@tp end status=0\\n" > uart.log\n')
    assert run_robot(s, tool) == "@tp begin v=1\n@tp end status=0\n"


def test_run_robot_failure_names_the_suite_and_its_output(tmp_path: Path) -> None:
    s = _scripts(tmp_path)
    tool = _stand_in(tmp_path, 'echo "Firmware Prints Its Results | FAIL |"; exit 1\n')
    with pytest.raises(CheckFailed, match=r"renode-test failed on nucleo_f746.robot \(exit 1\): "
                                          r"Firmware Prints Its Results \| FAIL \|"):
        run_robot(s, tool)


def test_run_robot_timeout(tmp_path: Path) -> None:
    s = _scripts(tmp_path)
    tool = _stand_in(tmp_path, "exec sleep 5\n")
    with pytest.raises(CheckFailed, match=r"did not finish within 0.5 s"):
        run_robot(s, tool, timeout_s=0.5)


def test_without_renode_test_it_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ToolMissing, match=r"renode-test not found; Renode is in neither PyPI nor "
                                          r"Debian: install it from https://renode.io"):
        require_renode_test()
