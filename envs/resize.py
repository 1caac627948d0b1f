"""Square frames of a chosen size from an env that renders at its own size.

:func:`lewm_agent.envs.make_env` passes ``image_size`` to an env whose constructor takes it; for any other
env it wraps the env in :class:`ResizeFrames`, so that every env of the project is asked for its
frame size the same way (``make_env(id, image_size=64)``, ``lewm collect --image-size 64``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["FRAME_KEYS", "ResizeFrames", "resize_frame"]

FRAME_KEYS = ("pixels", "goal")
"""Image entries of a goal env's Dict observation."""


def resize_frame(frame: Any, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3), bilinear with antialiasing (Pillow's); a frame that is
    already that size is returned as is. A frame that is not square is stretched to a square."""
    frame = np.asarray(frame)
    if frame.shape[:2] == (size, size):
        return frame
    from PIL import Image  # a dependency of matplotlib, hence always installed with lewm-agent

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))


def _is_image(space: gym.Space) -> bool:
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[2] == 3


class ResizeFrames(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Resize an env's frames to ``size`` x ``size``: ``obs["pixels"]`` and ``obs["goal"]`` of a Dict
    observation (other entries untouched), or the observation itself when it is one uint8 (H, W, 3)
    image; ``render()`` too.

    Raises:
        ValueError: ``size`` is not an int >= 8, or the env's observations hold no uint8 (H, W, 3) image.
    """

    def __init__(self, env: gym.Env, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise ValueError(f"image_size must be an int >= 8 pixels, got {size!r}; pass e.g. 64")
        gym.utils.RecordConstructorArgs.__init__(self, size=int(size))
        gym.ObservationWrapper.__init__(self, env)
        self.size = int(size)
        image = spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        space = env.observation_space
        if isinstance(space, spaces.Dict) and any(_is_image(space.spaces.get(k)) for k in FRAME_KEYS):
            self._keys = [k for k in FRAME_KEYS if _is_image(space.spaces.get(k))]
            self.observation_space = spaces.Dict({k: image if k in self._keys else s for k, s in space.spaces.items()})
        elif _is_image(space):
            self._keys = []
            self.observation_space = image
        else:
            raise ValueError(
                f"cannot resize the frames of {env}: its observation space {space} holds no uint8 (H, W, 3) image "
                f"under {list(FRAME_KEYS)}; make it render such frames, or give its constructor an image_size argument")

    def observation(self, observation: Any) -> Any:
        if not self._keys:
            return resize_frame(observation, self.size)
        return {k: resize_frame(v, self.size) if k in self._keys else v for k, v in observation.items()}

    def render(self) -> Any:
        frame = self.env.render()
        return frame if frame is None else resize_frame(frame, self.size)
