"""LeWM: encoder + action-conditioned predictor, trained with L = L_pred + lambda * SIGReg(Z).

Verbs: ``encode`` (pixels -> latents), ``predict`` (one step ahead at every position, causal),
``rollout`` (autoregressive over a horizon of action blocks, sliding history window) and
``loss`` (teacher-forced MSE, optionally + an R-step autoregressive rollout MSE, + SIGReg on the encoder's
embeddings of every frame).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig
from .encoder import ViTEncoder
from .predictor import Predictor
from .rollout import rollout_samples
from .sigreg import SIGReg


class LeWM(nn.Module):
    """The LeWorldModel. Shapes: B batch, T kept frames, D latent, k*A action block."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.encoder = ViTEncoder(cfg)
        self.predictor = Predictor(cfg)
        self.sigreg = SIGReg(cfg.sigreg_projections, cfg.sigreg_knots, cfg.sigreg_t_max)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels (..., H, W, 3) -> latents (..., D)."""
        lead = pixels.shape[:-3]
        z = self.encoder(pixels.reshape(-1, *pixels.shape[-3:]))
        return z.reshape(*lead, -1)

    def predict(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """z (B, T, D) and action blocks (B, T, k*A) -> predicted z_{t+1} for each t, (B, T, D)."""
        return self.predictor(z, actions)

    def rollout(self, z_context: torch.Tensor, a_context: torch.Tensor | None, a_plan: torch.Tensor) -> torch.Tensor:
        """Predict latents for a sequence of planned action blocks.

        Args:
            z_context: (B, c, D) observed latents, oldest first; the last one is "now".
            a_context: (B, c-1, k*A) action blocks executed between the context latents, or None if c == 1.
            a_plan: (B, H, k*A) action blocks to apply from "now" on.

        Returns:
            (B, H, D): the predicted latents after each planned block. The predictor sees at most
            ``history`` latents (a sliding window).
        """
        return self.rollout_samples(z_context, a_context, a_plan.unsqueeze(1)).squeeze(1)

    def rollout_samples(self, z_context: torch.Tensor, a_context: torch.Tensor | None, a_plan: torch.Tensor,
                        method: str = "auto") -> torch.Tensor:
        """:meth:`rollout` for S candidate plans per context, as a planner scores them.

        Args:
            z_context: (E, c, D); a_context: (E, c-1, k*A) or None; a_plan: (E, S, H, k*A).
            method: ``cached``: the work shared by the S samples (the context tokens) is done once
                per env and nothing is computed twice (:mod:`.rollout`; eval mode only);
                ``windows``: every window of every sample through :meth:`predict`, step by step
                (fewer, larger kernels); ``auto``: ``cached`` on a CPU in eval mode, else
                ``windows``. On an H200 the planner is bound by kernel launches, not arithmetic:
                ``paper`` CEM 300x30 took 0.39 s with ``windows`` against 0.60 s ``cached``; on a
                2-core CPU it is bound by arithmetic and ``cached`` took 0.70x the time.

        Returns:
            (E, S, H, D), the same numbers either way (up to float rounding).
        """
        if method == "auto":
            method = "cached" if not self.training and z_context.device.type == "cpu" else "windows"
        if method == "cached":
            if self.training:
                raise ValueError("rollout_samples(method='cached') needs eval mode (dropout off); call model.eval().")
            return rollout_samples(self.predictor, z_context, a_context, a_plan)
        if method != "windows":
            raise ValueError(f"rollout_samples: method={method!r}; choose 'auto', 'cached' or 'windows'.")
        E, S, H, Ad = a_plan.shape
        c = z_context.shape[1]
        if (0 if a_context is None else a_context.shape[1]) != c - 1:
            raise ValueError(f"rollout: {c} context latents need {c - 1} context action blocks.")
        z_seq = list(z_context.repeat_interleave(S, dim=0).unbind(1))
        a_seq = list(a_context.repeat_interleave(S, dim=0).unbind(1)) if c > 1 else []
        flat = a_plan.reshape(E * S, H, Ad)
        preds = []
        for h in range(H):
            a_seq.append(flat[:, h])
            w = min(len(z_seq), self.cfg.history)
            z_next = self.predict(torch.stack(z_seq[-w:], dim=1), torch.stack(a_seq[-w:], dim=1))[:, -1]  # (E*S, D)
            z_seq.append(z_next)
            preds.append(z_next)
        return torch.stack(preds, dim=1).view(E, S, H, -1)

    def forward(self, pixels: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Alias of :meth:`loss` so that DistributedDataParallel's hooks see the call."""
        return self.loss(pixels, actions)

    def loss(self, pixels: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher-forced one-step prediction loss (+ the rollout term) + lambda * SIGReg.

        Args:
            pixels: uint8 (B, T, H, W, 3) clip of T = history + 1 + R kept frames (R = ``rollout_loss_steps``).
            actions: float (B, T-1, k*A) normalised action blocks between consecutive frames.

        Returns:
            dict with ``loss``, ``pred_loss`` (with R > 0 the weighted mean of ``one_step_loss`` and
            ``rollout_loss``, also returned), ``sigreg_loss`` (scalars) and ``z`` (B, T, D), detached.
        """
        h, R = self.cfg.history, self.cfg.rollout_loss_steps
        if pixels.shape[1] != h + 1 + R:
            raise ValueError(f"LeWM.loss: clips of {pixels.shape[1]} frames; this config trains on "
                             f"history + 1 + rollout_loss_steps = {h + 1 + R}.")
        z = self.encode(pixels)  # (B, T, D)
        errors = self.prediction_errors(z, actions)
        pred_loss, out = errors["one_step_loss"], {}
        if R:
            w = self.cfg.rollout_loss_weight
            pred_loss = (pred_loss + w * errors["rollout_loss"]) / (1 + w)
            out = {k: v.detach() for k, v in errors.items()}
        sigreg_loss = self.sigreg(z.transpose(0, 1))  # per time step over the batch
        loss = pred_loss + self.cfg.sigreg_lambda * sigreg_loss
        return {"loss": loss, "pred_loss": pred_loss.detach(), "sigreg_loss": sigreg_loss.detach(), "z": z.detach(),
                **out}

    def prediction_errors(self, z: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """The prediction terms of :meth:`loss` on latents ``z`` (B, h + 1 + R, D) of a clip.

        Returns ``one_step_loss`` (teacher-forced MSE of z[:, 1:h+1]) and, with R = ``rollout_loss_steps`` > 0,
        ``rollout_loss``: the MSE of the R steps the predictor rolls out after its one-step prediction of z_h,
        each window holding its own predicted latents, as when planning. No stop-gradient on the targets (as in
        the reference): SIGReg alone prevents collapse.
        """
        h, R = self.cfg.history, self.cfg.rollout_loss_steps
        z_hat = self.predict(z[:, :h], actions[:, :h])  # (B, h, D): prediction of z[:, 1:h+1]
        out = {"one_step_loss": F.mse_loss(z_hat.float(), z[:, 1:h + 1].float())}
        if R:
            # go on from the one-step prediction of z_h (the same as rolling out R + 1 steps from z[:, :h])
            context = torch.cat([z[:, 1:h], z_hat[:, -1:]], dim=1)  # (B, h, D)
            z_roll = self.rollout(context, actions[:, 1:h], actions[:, h:])  # (B, R, D)
            out["rollout_loss"] = F.mse_loss(z_roll.float(), z[:, h + 1:].float())
        return out

    def num_params(self) -> dict[str, int]:
        """Parameter counts as the paper counts them (encoder = ViT, predictor = transformer), projectors apart."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        enc_proj, pred_proj = count(self.encoder.projector), count(self.predictor.projector)
        return {
            "encoder": count(self.encoder) - enc_proj,
            "encoder_projector": enc_proj,
            "predictor": count(self.predictor) - pred_proj,
            "predictor_projector": pred_proj,
            "total": count(self),
        }
