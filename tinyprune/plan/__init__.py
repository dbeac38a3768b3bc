"""The plan stage: a kernel per op (from the registry) and a static memory plan."""

from tinyprune.plan.planner import ConstArray, Plan, PlannedOp, plan

__all__ = ["ConstArray", "Plan", "PlannedOp", "plan"]
