"""The memory plan as the report's ``memory`` section (docs/report.md).

Op indices are positions among the plan's code ops (the report's ``layers``): aliasing ops
(RESHAPE and kin) emit no code, so a buffer's lifetime is mapped to the code ops that run while
it is live.
"""

from __future__ import annotations

from typing import Any

from tinyprune.plan.planner import Plan


def _code_span(code: list[int], first: int, last: int) -> tuple[int, int]:
    """The first and last code op (positions in ``code``) inside [first, last] of all ops; a
    buffer live only during alias ops is pinned to the nearest code op."""
    inside = [k for k, i in enumerate(code) if first <= i <= last]
    if not inside:
        inside = [min(range(len(code)), key=lambda k: abs(code[k] - first))]
    return inside[0], inside[-1]


def memory_section(planned: Plan) -> dict[str, Any]:
    """``memory.{arena_bytes, scratch_bytes, timeline, buffers}`` of the plan.

    ``timeline[k].live_bytes`` is the sum of the sizes of the tensor buffers live while code op
    k runs; ``buffers`` are sorted by their first op, and include each op's scratch buffer
    (``scratch`` true, no tensors) when the plan put the scratch in the arena.
    """
    code = [i for i, p in enumerate(planned.ops) if not p.call.alias]
    buffers: list[dict[str, Any]] = []
    for b in planned.memory.buffers:
        first, last = _code_span(code, b.first, b.last)
        buffers.append({"offset": b.offset, "size": b.size, "first_op": first, "last_op": last,
                        "tensors": [planned.graph.tensors[t].name for t in b.tensors],
                        "scratch": False})
    for i, offset in planned.memory.scratch_offsets:
        k = code.index(i)
        buffers.append({"offset": offset, "size": planned.ops[i].call.scratch_bytes,
                        "first_op": k, "last_op": k, "tensors": [], "scratch": True})
    timeline = []
    for k, i in enumerate(code):
        live = sum(b["size"] for b in buffers
                   if b["first_op"] <= k <= b["last_op"] and not b["scratch"])
        timeline.append({"op": k, "layer": planned.ops[i].op.name, "live_bytes": live,
                         "scratch_bytes": planned.ops[i].call.scratch_bytes})
    return {"arena_bytes": planned.memory.arena_bytes,
            "scratch_bytes": planned.memory.scratch_bytes,
            "timeline": timeline, "buffers": sorted(buffers, key=lambda b: b["first_op"])}
