"""Planning in latent space: batched CEM/iCEM, MPPI and Adam planners, and latent goal costs.

Every planner: ``planner(cost_fn, mean (E, H, Ad), cfg, low, high, generator) -> PlanResult`` with
``cost_fn(actions (E, S, H, Ad)) -> (E, S)``; :func:`plan` picks one by ``PlanConfig.planner``.
"""

from .cem import cem_plan
from .cost import latent_goal_cost
from .dispatch import PLANNERS, plan
from .grad import grad_plan
from .mppi import mppi_plan
from .receding import PlanEnsemble, shift_plan
from .result import PlanResult

__all__ = ["plan", "PLANNERS", "cem_plan", "mppi_plan", "grad_plan", "PlanResult", "latent_goal_cost", "shift_plan",
           "PlanEnsemble"]
