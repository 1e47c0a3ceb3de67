"""MoSCoW planning of the service catalog for a fleet: pure rules, no model in the loop.

from waveidp.plan import make_plan
plan = make_plan(fleet, profile="single-user", goals=["rag"])
plan.must[0].service, plan.must[0].node, plan.must[0].reason
"""

from waveidp.plan._decide import make_plan, unmet
from waveidp.plan._models import PRIORITIES, Decision, Plan, Priority, Profile
from waveidp.plan._report import to_html, to_markdown

__all__ = [
    "PRIORITIES",
    "Decision",
    "Plan",
    "Priority",
    "Profile",
    "make_plan",
    "to_html",
    "to_markdown",
    "unmet",
]
