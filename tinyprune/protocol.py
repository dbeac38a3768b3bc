"""The ``@tp`` result lines the firmware harness prints (docs/architecture.md), and their parser.

One format for every place a firmware runs: the emulator backends (unicorn, QEMU), Renode's UART
and a real board's serial port (``tinyprune monitor``) all hand their text to this module::

    @tp begin v=1 model=<name> board=<board> samples=<n> layers=<L>
    @tp layer s=<sample> i=<layer> cyc=<cycles>
    @tp out s=<sample> cyc=<cycles> hex=<output bytes>
    @tp stack peak=<bytes> size=<bytes>
    @tp end status=<0 ok | kernel status>

Other lines are ignored. ``@tp fault kind=<k> pc=... cfsr=... hfsr=... mmfar=... bfar=... sp=...
r0=... ... lr=...`` (printed by the fault handlers of startup.c.j2) is an error, decoded into the
fault the core raised (``tinyprune.emulator.faults.fault_from_line``).

:func:`parse_results` reads a whole capture from reset (an emulator's). A serial port joins a
board mid-stream, so :class:`ResultStream` takes lines one at a time: in ``serial`` mode it skips
whatever comes before a ``@tp begin`` (boot noise, the tail of an earlier run), finds the marker
behind junk bytes on a line (a UART often delivers one at reset), and starts over when the board
resets and prints ``@tp begin`` again. A malformed ``@tp`` line is an error in both modes: a
result that arrived garbled cannot be trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tinyprune.errors import CheckFailed, UsageError

PROTOCOL_VERSION = 1
MARKER = "@tp "
_SERIAL_START = ("@tp begin", "@tp fault")  # what a serial stream is read from
_REQUIRED = {
    "begin": ("v", "model", "board", "samples", "layers"),
    "layer": ("s", "i", "cyc"),
    "out": ("s", "cyc", "hex"),
    "stack": ("peak", "size"),
    "end": ("status",),
}


@dataclass(frozen=True)
class SampleResult:
    """One inference: output bytes, its cycles and the cycles of each layer."""

    index: int
    output: bytes
    cycles: int
    layer_cycles: tuple[int, ...]


@dataclass(frozen=True)
class HarnessResults:
    """Everything the harness reported."""

    model: str
    board: str
    layers: int
    samples: tuple[SampleResult, ...]
    stack_peak: int
    stack_size: int
    status: int

    @property
    def outputs(self) -> list[bytes]:
        """Output bytes per sample."""
        return [s.output for s in self.samples]

    @property
    def total_cycles(self) -> int:
        """Cycles of all inferences together."""
        return sum(s.cycles for s in self.samples)

    @property
    def mean_layer_cycles(self) -> list[int]:
        """Cycles of each layer, the mean over the samples (integer division)."""
        if not self.samples:
            return [0] * self.layers
        n = len(self.samples)
        return [sum(c) // n for c in zip(*(s.layer_cycles for s in self.samples), strict=True)]


def _fields(line: str, number: int) -> tuple[str, dict[str, str]]:
    parts = line.split()
    if len(parts) < 2:
        raise CheckFailed(
            f"result line {number}: expected '@tp <kind> key=value ...', received {line!r}"
        )
    kind, values = parts[1], {}
    for token in parts[2:]:
        key, sep, value = token.partition("=")
        if not sep:
            raise CheckFailed(f"result line {number}: expected key=value, received {token!r}")
        values[key] = value
    if kind == "fault":
        from tinyprune.emulator.faults import fault_from_line

        raise CheckFailed(f"firmware faulted: {fault_from_line(values).describe()} ({line})")
    missing = [key for key in _REQUIRED.get(kind, ()) if key not in values]
    if kind not in _REQUIRED or missing:
        expected = (
            f"fields {', '.join(missing)}" if missing else "a known kind " + "|".join(_REQUIRED)
        )
        raise CheckFailed(f"result line {number}: expected {expected}, received {line!r}")
    return kind, values


def _int(values: dict[str, str], key: str, number: int) -> int:
    try:
        return int(values[key], 10)
    except ValueError:
        raise CheckFailed(
            f"result line {number}: field {key}: expected an integer, received {values[key]!r}"
        ) from None


def _hex(values: dict[str, str], number: int) -> bytes:
    try:
        return bytes.fromhex(values["hex"])
    except ValueError:
        raise CheckFailed(
            f"result line {number}: field hex: expected hex bytes, received {values['hex']!r}"
        ) from None


class _Collector:
    def __init__(self) -> None:
        self.begin: dict[str, str] | None = None
        self.layers: dict[int, dict[int, int]] = {}
        self.outs: dict[int, tuple[bytes, int]] = {}
        self.stack: tuple[int, int] | None = None
        self.status: int | None = None

    def add(self, kind: str, values: dict[str, str], number: int) -> None:
        if kind != "begin" and self.begin is None:
            raise CheckFailed(f"result line {number}: '@tp {kind}' before '@tp begin'")
        if kind == "begin":
            if _int(values, "v", number) != PROTOCOL_VERSION:
                raise CheckFailed(
                    f"result line {number}: expected v={PROTOCOL_VERSION}, received v={values['v']}"
                )
            _int(values, "samples", number)
            _int(values, "layers", number)
            self.begin = values
        elif kind == "layer":
            sample = self.layers.setdefault(_int(values, "s", number), {})
            sample[_int(values, "i", number)] = _int(values, "cyc", number)
        elif kind == "out":
            self.outs[_int(values, "s", number)] = (
                _hex(values, number),
                _int(values, "cyc", number),
            )
        elif kind == "stack":
            self.stack = (_int(values, "peak", number), _int(values, "size", number))
        else:
            self.status = _int(values, "status", number)

    def result(self) -> HarnessResults:
        if self.begin is None:
            raise CheckFailed(
                "no '@tp begin' line in the firmware output (did the firmware start?)"
            )
        if self.status is None:
            raise CheckFailed("no '@tp end' line in the firmware output (did the firmware finish?)")
        n_layers = _int(self.begin, "layers", 0)
        samples = []
        for index in sorted(self.outs):
            output, cycles = self.outs[index]
            per_layer = self.layers.get(index, {})
            samples.append(
                SampleResult(
                    index, output, cycles, tuple(per_layer.get(i, 0) for i in range(n_layers))
                )
            )
        expected = _int(self.begin, "samples", 0)
        if self.status == 0 and len(samples) != expected:
            raise CheckFailed(f"expected {expected} '@tp out' lines, received {len(samples)}")
        peak, size = self.stack if self.stack is not None else (0, 0)
        return HarnessResults(
            self.begin["model"],
            self.begin["board"],
            n_layers,
            tuple(samples),
            peak,
            size,
            self.status,
        )


class ResultStream:
    """Result lines fed one at a time; :attr:`done` once the ``@tp end`` line arrived.

    Args:
        serial: the lenient start of a serial port (module docstring): lines before the first
            ``@tp begin`` are skipped, a marker behind junk bytes is found, and a second
            ``@tp begin`` (the board was reset) starts the collection over. Without it
            (an emulator's capture from reset) the rules of :func:`parse_results` apply.
    """

    def __init__(self, *, serial: bool = False) -> None:
        self.serial = serial
        self.lines = 0
        self.done = False
        self._collector = _Collector()

    @property
    def started(self) -> bool:
        """Whether a ``@tp begin`` line arrived."""
        return self._collector.begin is not None

    def _result_text(self, raw: str) -> str | None:
        line = raw.strip()
        if line.startswith(MARKER):
            return line
        if self.serial and MARKER in line:
            return line[line.index(MARKER):]
        return None

    def feed(self, raw: str) -> bool:
        """Takes one line (with or without its newline); returns :attr:`done`.

        Raises:
            CheckFailed: a malformed result line (with its number), a fault line, a line
                before ``@tp begin`` (not in serial mode).
        """
        if self.done:
            return True  # the firmware idles after its end line; nothing more is read
        self.lines += 1
        line = self._result_text(raw)
        if line is None:
            return False
        if self.serial and not self.started and not line.startswith(_SERIAL_START):
            return False  # the rest of a run that began before the port was opened
        kind, values = _fields(line, self.lines)
        if kind == "begin" and self.serial:
            self._collector = _Collector()
        self._collector.add(kind, values, self.lines)
        self.done = kind == "end"
        return self.done

    def result(self) -> HarnessResults:
        """The results so far, checked complete.

        Raises:
            CheckFailed: no begin or no end line, or fewer ``@tp out`` lines than announced.
        """
        return self._collector.result()


def parse_results(text: str) -> HarnessResults:
    """Parse the result lines in ``text`` (other lines are ignored).

    Raises:
        CheckFailed: a malformed line (with its number), a fault line, or a missing begin/end.
    """
    stream = ResultStream()
    for raw in text.splitlines():
        if stream.feed(raw):
            break
    return stream.result()


# --- what a build expects its firmware to report ------------------------------------------------

EXPECTED_FILE = "reference_outputs.json"  # in a build's firmware/ folder
EXPECTED_FORMAT = 1


@dataclass(frozen=True)
class ExpectedOutputs:
    """The TFLite Micro reference outputs of the inputs compiled into a build's firmware, in the
    order the harness runs them: what ``@tp out`` must say, byte for byte, wherever it runs.

    Attributes:
        inputs: per output, which input it is: ``("sample", row)`` or ``("random", row)``.
    """

    board: str
    model: str
    elf_sha256: str
    output_bytes: int
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[bytes, ...]

    def to_json(self) -> str:
        return json.dumps({
            "written_by": "tinyprune", "format": EXPECTED_FORMAT, "board": self.board,
            "model": self.model, "elf_sha256": self.elf_sha256,
            "output_bytes": self.output_bytes,
            "inputs": [{"input": kind, "row": row} for kind, row in self.inputs],
            "outputs": [o.hex() for o in self.outputs]}, indent=1) + "\n"


def read_expected(path: Path) -> ExpectedOutputs:
    """A build's ``firmware/reference_outputs.json``.

    Raises:
        UsageError: missing or not one tinyprune wrote (names the file and what to do).
    """
    if not path.is_file():
        raise UsageError(f"{path}: no reference outputs (builds of tinyprune before this version "
                         "did not write them); rebuild with 'tinyprune build'")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("written_by") != "tinyprune" or doc.get("format") != EXPECTED_FORMAT:
            raise ValueError("not written by this tinyprune")
        return ExpectedOutputs(
            board=str(doc["board"]), model=str(doc["model"]),
            elf_sha256=str(doc["elf_sha256"]), output_bytes=int(doc["output_bytes"]),
            inputs=tuple((str(i["input"]), int(i["row"])) for i in doc["inputs"]),
            outputs=tuple(bytes.fromhex(o) for o in doc["outputs"]))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not tinyprune's reference outputs ({type(exc).__name__}: "
                         f"{exc}); rebuild with 'tinyprune build'") from None
