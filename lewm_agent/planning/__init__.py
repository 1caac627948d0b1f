"""Planning in latent space: batched CEM and latent goal costs."""

from .cem import PlanResult, cem_plan
from .cost import latent_goal_cost

__all__ = ["cem_plan", "PlanResult", "latent_goal_cost"]
