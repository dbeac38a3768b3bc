"""The plan stage: a kernel per op (from the registry) and a static memory plan."""

from tinyprune.plan.planner import ConstArray, Plan, PlannedOp, plan
from tinyprune.plan.summary import memory_section

__all__ = ["ConstArray", "Plan", "PlannedOp", "memory_section", "plan"]
