"""Parse the ``@tp`` result lines the firmware harness prints (docs/architecture.md).

The same lines come from every emulator backend and from a real board's serial port::

    @tp begin v=1 model=<name> board=<board> samples=<n> layers=<L>
    @tp layer s=<sample> i=<layer> cyc=<cycles>
    @tp out s=<sample> cyc=<cycles> hex=<output bytes>
    @tp stack peak=<bytes> size=<bytes>
    @tp end status=<0 ok | kernel status>

Other lines are ignored. ``@tp fault kind=<k> pc=... cfsr=... hfsr=... mmfar=... bfar=... sp=...
r0=... ... lr=...`` (printed by the fault handlers of startup.c.j2) is an error, decoded into the
fault the core raised (``faults.fault_from_line``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyprune.errors import CheckFailed

PROTOCOL_VERSION = 1
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


def parse_results(text: str) -> HarnessResults:
    """Parse the result lines in ``text`` (other lines are ignored).

    Raises:
        CheckFailed: a malformed line (with its number), a fault line, or a missing begin/end.
    """
    collector = _Collector()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("@tp "):
            continue
        kind, values = _fields(line, number)
        collector.add(kind, values, number)
        if kind == "end":
            break
    return collector.result()
