"""lewm-agent: LeWorldModel (LeWM) as a model-based agent for Gymnasium.

A JEPA world model trained end to end from offline pixels (ViT encoder + BatchNorm projector,
AdaLN-zero causal action-conditioned predictor, SIGReg), planning with latent CEM-MPC toward a
goal image. Typical use::

    from lewm_agent import LeWMAgent
    agent = LeWMAgent.load("runs/tworoom/agent")
    action = agent.act(obs)          # obs = {"pixels": uint8 (H, W, 3), "goal": uint8 (H, W, 3)}
"""

__version__ = "0.1.0"

from .agent import LeWMAgent, resolve_device  # noqa: E402
from .config import ModelConfig, PlanConfig, TrainConfig, preset  # noqa: E402
from .model import LeWM  # noqa: E402


def load(path, device: str = "auto", **plan_overrides) -> LeWMAgent:
    """Shorthand for :meth:`LeWMAgent.load`."""
    return LeWMAgent.load(path, device=device, **plan_overrides)


__all__ = ["LeWMAgent", "LeWM", "ModelConfig", "TrainConfig", "PlanConfig", "preset", "load", "resolve_device",
           "__version__"]
