"""The plan stage: a kernel per op (from the registry) and a static memory plan."""

from tinyprune.kernels.base import PlanOptions
from tinyprune.plan.planner import Choice, ConstArray, Plan, PlannedOp, choose_kernel, plan

__all__ = ["Choice", "ConstArray", "Plan", "PlanOptions", "PlannedOp", "choose_kernel", "plan"]
