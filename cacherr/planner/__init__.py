"""The planner: a pure function from what is wanted and what is cached to a Plan."""

from cacherr.planner.model import Plan, PlanInput, PlannedAction, Space, Want
from cacherr.planner.plan import make_plan

__all__ = ["Plan", "PlanInput", "PlannedAction", "Space", "Want", "make_plan"]
