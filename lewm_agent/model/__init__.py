"""The LeWM world model: ViT encoder + BatchNorm projector, AdaLN-zero predictor, SIGReg."""

from .encoder import ViTEncoder
from .predictor import Predictor
from .sigreg import SIGReg
from .world_model import LeWM

__all__ = ["LeWM", "ViTEncoder", "Predictor", "SIGReg"]
