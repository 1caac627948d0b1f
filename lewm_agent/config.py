"""Configs as plain dataclasses, with named presets.

Three presets share one schema:

- ``tiny``: for tests; trains in seconds on a CPU core.
- ``cpu``: 64x64 pixels, sized by measurement so that a 2-core laptop trains a good
  TwoRoom agent in minutes.
- ``paper``: the LeWM reference configuration (ViT-tiny 224/14 encoder, 6-block
  predictor, about 18M parameters in all) for one GPU.

Defaults of every field match the LeWM paper / reference code (``paper`` preset) unless the
docstring says otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass
from typing import Any, Literal

from .settings import FALSE, TRUE, check_name

__all__ = [
    "check_fields",
    "check_type",
    "ModelConfig",
    "TrainConfig",
    "PlanConfig",
    "CEMConfig",
    "MPPIConfig",
    "GradConfig",
    "PolicyConfig",
    "PRESETS",
    "preset",
]


def check_type(owner: str, name: str, kind: Any, value: Any) -> None:
    """ValueError ``owner.name must be ...`` unless ``value`` is a ``kind`` (``bool``, ``int``, ``float``, ``str`` or a
    ``Literal`` of choices; an int is a valid float, a bool is no number, a float must be finite); other kinds are
    not checked."""
    if typing.get_origin(kind) is Literal:
        if value not in typing.get_args(kind):
            raise ValueError(f"{owner}.{name}={value!r}: choose one of {list(typing.get_args(kind))}.")
        return
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
          str: lambda v: isinstance(v, str)}.get(kind)
    if ok is not None and not ok(value):
        what = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}[kind]
        raise ValueError(f"{owner}.{name} must be {what}, got {value!r}.")


def check_fields(cfg: Any, rules: dict[str, tuple] | None = None) -> None:
    """ValueError naming the first field of dataclass ``cfg`` whose value has the wrong type or breaks its rule.

    Types come from the annotations (:func:`check_type`; a ``Literal`` annotation lists the choices). ``rules`` map
    a field to ``(">=", bound)``, ``(">", bound)``, ``("in", choices)`` or ``("range", low, high)`` (``low <= x <
    high``). Run by each config's ``__post_init__``, so a bad value is refused where it enters: a constructor,
    ``replace``, a command-line setting (:mod:`lewm_agent.settings`) or a checkpoint's config.
    """
    name_of = type(cfg).__name__
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        check_type(name_of, f.name, hints.get(f.name), getattr(cfg, f.name))
    for name, rule in (rules or {}).items():
        value, op = getattr(cfg, name), rule[0]
        if op == ">=" and not value >= rule[1]:
            raise ValueError(f"{name_of}.{name} must be >= {rule[1]}, got {value!r}.")
        if op == ">" and not value > rule[1]:
            raise ValueError(f"{name_of}.{name} must be > {rule[1]}, got {value!r}.")
        if op == "in" and value not in rule[1]:
            raise ValueError(f"{name_of}.{name}={value!r}: choose one of {list(rule[1])}.")
        if op == "range" and not rule[1] <= value < rule[2]:
            raise ValueError(f"{name_of}.{name} must be in [{rule[1]}, {rule[2]}), got {value!r}.")


@dataclass
class ModelConfig:
    """Shape of the LeWM world model.

    The encoder is a ViT over ``image_size`` pixels with ``patch_size`` patches; its CLS token
    goes through a BatchNorm projector to a latent of ``latent_dim``. The predictor is a causal
    transformer over ``history`` latents, conditioned on action blocks by AdaLN-zero.
    """

    image_size: int = 224
    """Side of the square model input in pixels; observations are resized to it."""
    patch_size: int = 14
    """ViT patch side in pixels; ``image_size`` must be a multiple of it."""
    enc_width: int = 192
    """ViT hidden width (ViT-tiny: 192)."""
    enc_depth: int = 12
    """Number of ViT blocks (ViT-tiny: 12)."""
    enc_heads: int = 3
    """ViT attention heads (ViT-tiny: 3)."""
    enc_mlp_dim: int = 768
    """ViT MLP hidden size (ViT-tiny: 768)."""
    enc_pos_embed: Literal["learned", "sincos"] = "learned"
    """Encoder position embedding: ``learned`` (init std 0.02, the reference's HF ViT) or ``sincos``
    (fixed 2-D sine-cosine at unit scale, as in MAE). Measured on the bare-dot TwoRoom (`cpu`, CLS
    readout): ``sincos`` did not stop a small object from being encoded almost the same in every patch
    (38% success, the cost still repeating with the patch period); ``enc_readout="flatten"`` did."""
    enc_readout: Literal["cls", "flatten"] = "cls"
    """What the projector reads: ``cls`` (the CLS token, the reference) or ``flatten`` (every patch
    token of the last layer, concatenated in grid order: the projector's first layer then sees which
    patch holds what, so a latent cannot be the same for an object in two different patches)."""
    latent_dim: int = 192
    """Dimension D of the latent z (output of the projectors)."""
    projector_hidden: int = 2048
    """Hidden size of the Linear-BatchNorm-GELU-Linear projectors (reference: 2048)."""
    pred_width: int = 192
    """Predictor token width."""
    pred_depth: int = 6
    """Predictor transformer blocks (reference: 6)."""
    pred_heads: int = 16
    """Predictor attention heads (reference: 16)."""
    pred_head_dim: int = 64
    """Dimension of each predictor head (reference: 64, so attention width 1024)."""
    pred_mlp_dim: int = 2048
    """Predictor MLP hidden size (reference: 2048)."""
    pred_dropout: float = 0.1
    """Dropout in the predictor (paper: 0.1 best on PushT; 0 -> 78%, 0.1 -> 96%)."""
    action_dim: int = 2
    """Dimension A of one environment action."""
    frameskip: int = 5
    """Environment steps per kept frame; one action block holds ``frameskip`` actions."""
    history: int = 3
    """Latents the predictor sees (reference code: 3; paper appendix: 1 for TwoRoom)."""
    sigreg_lambda: float = 0.09
    """Weight of SIGReg in the loss (reference code: 0.09; paper: 0.1)."""
    sigreg_projections: int = 1024
    """Random 1-D directions per SIGReg call (reference: 1024)."""
    sigreg_knots: int = 17
    """Trapezoid knots on [0, sigreg_t_max] for the Epps-Pulley integral (reference: 17)."""
    sigreg_t_max: float = 3.0
    """Upper end of the integration range (reference code: 3; doubled by symmetry)."""
    rollout_loss_steps: int = 0
    """Extra autoregressive steps R in the training loss (0, the reference: teacher-forced one-step loss only).
    With R > 0 a training clip holds ``history + 1 + R`` frames and the predictor also rolls out R steps past
    the one-step prediction, feeding back its own latents as planning does; their MSE to the encoder's
    latents joins the loss (a lewm-agent option, not in the paper)."""
    rollout_loss_weight: float = 1.0
    """Weight of the rollout term (mean over its R steps) against the one-step loss."""

    @property
    def action_block_dim(self) -> int:
        """Inputs of the action encoder: ``frameskip * action_dim``."""
        return self.frameskip * self.action_dim

    @property
    def num_frames(self) -> int:
        """Kept frames in a training clip: ``history`` inputs + 1 target step + ``rollout_loss_steps``."""
        return self.history + 1 + self.rollout_loss_steps

    def __post_init__(self) -> None:
        check_fields(self, {
            "image_size": (">=", 8), "patch_size": (">=", 1), "pred_dropout": ("range", 0.0, 1.0),
            "sigreg_lambda": (">=", 0), "sigreg_knots": (">=", 2), "sigreg_t_max": (">", 0),
            "rollout_loss_steps": (">=", 0), "rollout_loss_weight": (">=", 0),
            **{name: (">=", 1) for name in ("enc_width", "enc_depth", "enc_heads", "enc_mlp_dim", "latent_dim",
                                            "projector_hidden", "pred_width", "pred_depth", "pred_heads",
                                            "pred_head_dim", "pred_mlp_dim", "action_dim", "frameskip", "history",
                                            "sigreg_projections")}})

    def validate(self) -> "ModelConfig":
        """Raise ``ValueError`` naming the bad field; return self for chaining. :meth:`__post_init__` checks each
        field; this adds the rules between fields."""
        self.__post_init__()  # fields may have been assigned since construction
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"ModelConfig.image_size={self.image_size} is not a multiple of "
                f"patch_size={self.patch_size}; choose sizes like 224/14 or 64/8."
            )
        if self.enc_width % self.enc_heads != 0:
            raise ValueError(
                f"ModelConfig.enc_width={self.enc_width} must be divisible by enc_heads={self.enc_heads}."
            )
        if self.enc_pos_embed == "sincos" and self.enc_width % 4:
            raise ValueError(f"ModelConfig.enc_pos_embed='sincos' needs enc_width divisible by 4, "
                             f"got {self.enc_width}.")
        return self


STREAM_CHOICES = ("auto", "on", "off")


@dataclass
class TrainConfig:
    """Optimisation settings (reference: AdamW lr 5e-5, wd 1e-3, warm-up + cosine, clip 1.0)."""

    steps: int = 20_000
    """Optimiser steps in total."""
    batch_size: int = 128
    """Clips per optimiser step (global: split across ranks under torchrun)."""
    lr: float = 5e-5
    """Peak learning rate after warm-up."""
    min_lr_ratio: float = 0.0
    """Cosine decays to ``lr * min_lr_ratio``."""
    weight_decay: float = 1e-3
    """AdamW weight decay."""
    warmup_steps: int = 1000
    """Linear warm-up steps from 0 to ``lr``."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    val_fraction: float = 0.1
    """Fraction of episodes held out for validation and evaluation."""
    split_seed: int = 0
    """Seed of the train/validation episode split."""
    seed: int = 0
    """Seed of initialisation and batch sampling."""
    log_every: int = 25
    """Steps between TensorBoard scalar writes."""
    val_every: int = 250
    """Steps between validation losses."""
    ckpt_every: int = 500
    """Steps between resumable checkpoints."""
    device: str = "auto"
    """``auto`` picks CUDA when available, else CPU."""
    bf16: bool = True
    """bf16 autocast on CUDA (the reference's precision). On CPU see ``cpu_bf16``."""
    cpu_bf16: Literal["auto", "on", "off"] = "auto"
    """bf16 autocast on CPU: ``on``, ``off`` or ``auto`` (booleans also accepted). ``auto`` is on only
    where it was measured faster: a CPU with AVX-512 (oneDNN bf16 kernels) and a paper-size encoder
    (at least 64 patches per image). Measured with 2 threads: on an AVX-512-bf16 CPU, bf16 took
    0.84x the fp32 time per step for ``paper`` (224/14, 257 tokens) but 1.46x for ``cpu`` (64/16,
    17 tokens); on an AVX2-only CPU (AMD EPYC, no AVX-512) bf16 took 12x the fp32 time for ``cpu``."""
    prefetch: bool = True
    """Build the next batches ahead while the current step runs (same batches): in a background thread,
    or ``workers`` processes."""
    stream: Literal["auto", "on", "off"] = "auto"
    """Where the training pixels are read from: ``off`` loads the file's pixels into memory (N * H * W * 3
    bytes per rank); ``on`` reads the rows each batch needs from disk, keeping at most ``cache_mb`` of
    decoded chunks per reading process; ``auto`` streams when the in-memory pixels (one copy per process
    of this machine) would take more than half of the available memory. The batches are the same."""
    workers: int = 0
    """DataLoader worker processes that build batches (each ``prefetch``-ing 2 ahead, pinned on CUDA);
    0 builds them in a background thread of the training process. Same batches for any count. On 2
    CPU cores 0 was fastest (``benchmarks/data.py``: workers share the cores with the step, and each
    batch crosses to the training process through new shared memory); more cores favour workers."""
    cache_mb: int = 256
    """MiB of decoded pixel chunks each reading process keeps when streaming (>= 0)."""

    def __post_init__(self) -> None:
        if not isinstance(self.stream, str) or self.stream.strip().lower() not in STREAM_CHOICES:
            raise ValueError(f"TrainConfig.stream={self.stream!r}: choose one of {list(STREAM_CHOICES)}.")
        self.stream = self.stream.strip().lower()
        for name in ("workers", "cache_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TrainConfig.{name}={value!r} must be an integer >= 0.")
        if isinstance(self.cpu_bf16, bool) or isinstance(self.cpu_bf16, str):  # booleans and their spellings
            self.cpu_bf16 = _ON_OFF.get(str(self.cpu_bf16).strip().lower(), self.cpu_bf16)
        check_fields(self, {
            "steps": (">=", 1), "batch_size": (">=", 1), "lr": (">", 0), "min_lr_ratio": ("range", 0.0, 1.0 + 1e-12),
            "weight_decay": (">=", 0), "warmup_steps": (">=", 0), "grad_clip": (">", 0),
            "val_fraction": ("range", 1e-12, 1.0), "log_every": (">=", 1), "val_every": (">=", 1),
            "ckpt_every": (">=", 1)})

    def validate(self) -> "TrainConfig":
        """Raise ``ValueError`` naming the bad field; return self for chaining."""
        self.__post_init__()
        return self


_ON_OFF = {"auto": "auto", **{word: "on" for word in TRUE}, **{word: "off" for word in FALSE}}
"""``cpu_bf16``'s spellings: the settings grammar's booleans, plus ``auto``."""




@dataclass
class CEMConfig:
    """What :func:`lewm_agent.planning.cem_plan` needs, and nothing else.

    Plain CEM (the LeWM reference) is ``noise_beta=0, keep_elites=0, sample_decay=1,
    early_stop_std=0, select="mean"``. The iCEM options (Pinneri et al. 2020) spend fewer model
    calls per good plan: coloured noise, elites carried across iterations, fewer samples in
    later iterations, and a stop once the elites agree.
    """

    samples: int = 300
    """Sequences sampled per iteration per environment (the first iteration's count)."""
    iterations: int = 30
    """Maximum number of iterations."""
    elites: int = 30
    """Lowest-cost samples that refit the mean and std."""
    init_std: float = 1.0
    """Initial std of the sampling distribution, in normalised action units."""
    min_std: float = 0.0
    """Floor on the std after each refit (0 = none, as in the reference)."""
    noise_beta: float = 0.0
    """Exponent of the noise's power spectrum over the horizon, 1/f^beta (0 = white, reference)."""
    keep_elites: int = 0
    """Best elites of the last iteration carried into the next one with their known costs (not
    scored again, so they cost no model calls; iCEM keeps a fraction)."""
    sample_decay: float = 1.0
    """Iteration i scores ``max(min(2 * elites, samples), int(samples / sample_decay**i))`` new
    sequences (1 = constant; iteration 0 always scores ``samples``)."""
    early_stop_std: float = 0.0
    """Stop once every env's mean elite std (before the min_std floor) falls below this
    (normalised units; 0 = never)."""
    select: Literal["mean", "best"] = "mean"
    """The returned plan: ``mean`` (the final mean, reference) or ``best`` (lowest-cost sequence scored)."""

    def validate(self) -> "CEMConfig":
        if self.samples < 1 or self.iterations < 1:
            raise ValueError("CEMConfig.samples and iterations must be >= 1.")
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f"CEMConfig.elites={self.elites} must be in [1, samples={self.samples}].")
        if not 0 <= self.keep_elites <= self.elites:
            raise ValueError(f"CEMConfig.keep_elites={self.keep_elites} must be in [0, elites={self.elites}].")
        if self.sample_decay < 1.0:
            raise ValueError(f"CEMConfig.sample_decay={self.sample_decay} must be >= 1 (1 = constant sample count).")
        if self.init_std <= 0 or self.min_std < 0 or self.early_stop_std < 0 or self.noise_beta < 0:
            raise ValueError("CEMConfig: init_std must be > 0; min_std, early_stop_std and noise_beta >= 0.")
        if self.select not in ("mean", "best"):
            raise ValueError(f"CEMConfig.select={self.select!r}: choose 'mean' or 'best'.")
        return self


@dataclass
class MPPIConfig:
    """Model-predictive path integral: a softmax-weighted mean of all samples instead of elites."""

    samples: int = 300
    """Sequences sampled per iteration per environment."""
    iterations: int = 10
    """Iterations."""
    init_std: float = 1.0
    """Initial std of the sampling distribution (normalised units)."""
    min_std: float = 0.05
    """Floor on the std after each refit."""
    temperature: float = 0.1
    """Softmax temperature, relative to the cost spread of each env (scale-free): weights are
    ``softmax(-(c - c_min) / (temperature * (c_median - c_min) + eps))``."""
    select: Literal["mean", "best"] = "mean"
    """``mean`` (the final weighted mean) or ``best`` (lowest-cost sequence scored)."""

    def validate(self) -> "MPPIConfig":
        if self.samples < 2 or self.iterations < 1:
            raise ValueError("MPPIConfig.samples must be >= 2 and iterations >= 1.")
        if self.temperature <= 0 or self.init_std <= 0 or self.min_std < 0:
            raise ValueError("MPPIConfig: temperature and init_std must be > 0, min_std >= 0.")
        if self.select not in ("mean", "best"):
            raise ValueError(f"MPPIConfig.select={self.select!r}: choose 'mean' or 'best'.")
        return self


@dataclass
class GradConfig:
    """Gradient planner: Adam on the action sequences through the differentiable model (paper: lr 0.1,
    30 steps, 100 samples)."""

    samples: int = 100
    """Sequences optimised in parallel per environment (the first is the initial mean)."""
    iterations: int = 30
    """Adam steps."""
    lr: float = 0.1
    """Adam learning rate (normalised action units)."""
    init_std: float = 1.0
    """Std of the initial perturbations around the mean."""

    def validate(self) -> "GradConfig":
        if self.samples < 1 or self.iterations < 1 or self.lr <= 0 or self.init_std < 0:
            raise ValueError("GradConfig: samples and iterations must be >= 1, lr > 0, init_std >= 0.")
        return self


@dataclass
class PlanConfig:
    """How the agent decides: latent MPC with a planner (CEM by default), or a learned policy.

    Planner-specific fields are shared where they mean the same thing (``samples``,
    ``iterations``, ``init_std``, ``min_std``, ``select``); :meth:`cem`, :meth:`mppi` and
    :meth:`grad` cut out the config each planner takes.
    """

    planner: Literal["cem", "mppi", "adam"] = "cem"
    """``cem`` (iCEM options below), ``mppi``, or ``adam`` (gradient descent through the model)."""
    mode: Literal["plan", "policy"] = "plan"
    """``plan``: the planner decides (warm-started by the policy if the agent has one and
    ``policy_warm_start``); ``policy``: the agent's latent policy acts alone (milliseconds)."""
    samples: int = 300
    """Action sequences sampled per iteration per environment."""
    iterations: int = 30
    """Planner iterations (paper: 30 for PushT, 10 elsewhere)."""
    elites: int = 30
    """CEM: lowest-cost samples that refit the mean and std."""
    horizon: int = 5
    """Planning horizon in action blocks (x frameskip env steps)."""
    receding_horizon: int = 5
    """Action blocks executed before replanning (reference: the whole plan)."""
    replan_every: int = 0
    """Env steps executed before replanning; 0 = ``receding_horizon`` whole blocks. Below ``frameskip`` the agent
    decides mid-block (1 = at every env step, closed loop at the env's rate): the context then ends at the
    current frame, with the earlier ``history`` latents ``frameskip`` steps apart. At most ``horizon x frameskip``
    (checked where the frameskip is known: the agent)."""
    ensemble: bool = False
    """Temporal ensembling (ACT, Zhao et al. 2023): each executed action is the mean of what every plan still
    running proposed for this env step, the newest included. Needs plans that overlap: ``replan_every`` below
    ``horizon x frameskip``."""
    init_std: float = 1.0
    """Initial std of the sampling distribution, in normalised action units."""
    min_std: float = 0.0
    """Floor on the std after each refit (0 = none, as in the reference)."""
    noise_beta: float = 0.0
    """CEM: coloured-noise exponent over the horizon (0 = white, reference; iCEM uses 2-2.5)."""
    keep_elites: int = 0
    """CEM: elites carried into the next iteration (0 = none, reference)."""
    sample_decay: float = 1.0
    """CEM: iteration i scores ``max(min(2 * elites, samples), int(samples / sample_decay**i))`` (1 = constant)."""
    early_stop_std: float = 0.0
    """CEM: stop when every env's mean elite std falls below this (0 = never)."""
    select: Literal["mean", "best"] = "mean"
    """The returned plan: ``mean`` (reference) or ``best`` (lowest-cost sequence scored)."""
    temperature: float = 0.1
    """MPPI: softmax temperature relative to each env's cost spread."""
    lr: float = 0.1
    """Adam planner: learning rate."""
    cost: Literal["terminal", "all"] = "terminal"
    """``terminal``: ||z_H - z_goal||^2 (reference); ``all``: summed over every step."""
    warm_start: bool = True
    """Start the next plan's mean from the unexecuted tail of the last one."""
    policy_warm_start: bool = True
    """If the agent has a latent policy, start each plan's mean from the policy's proposal."""
    seed: int = 0
    """Seed of the planner's sampling generator (reset with the agent)."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Arithmetic of encoding and planning: ``fp32``, ``bf16`` (autocast) or ``auto`` = bf16 where
    the device multiplies bf16 faster (measured once per process, see :mod:`lewm_agent.precision`)."""

    def __post_init__(self) -> None:
        check_fields(self, {
            "init_std": (">", 0), "min_std": (">=", 0), "noise_beta": (">=", 0), "keep_elites": (">=", 0),
            "sample_decay": (">=", 1), "early_stop_std": (">=", 0), "temperature": (">", 0), "lr": (">", 0),
            "replan_every": (">=", 0),
            **{name: (">=", 1) for name in ("samples", "iterations", "elites", "horizon", "receding_horizon")}})

    def cem(self) -> CEMConfig:
        """The CEM-only config of this plan config."""
        return CEMConfig(samples=self.samples, iterations=self.iterations, elites=self.elites,
                         init_std=self.init_std, min_std=self.min_std, noise_beta=self.noise_beta,
                         keep_elites=self.keep_elites, sample_decay=self.sample_decay,
                         early_stop_std=self.early_stop_std, select=self.select)

    def mppi(self) -> MPPIConfig:
        """The MPPI-only config of this plan config."""
        return MPPIConfig(samples=self.samples, iterations=self.iterations, init_std=self.init_std,
                          min_std=self.min_std, temperature=self.temperature, select=self.select)

    def grad(self) -> GradConfig:
        """The Adam-planner config of this plan config."""
        return GradConfig(samples=self.samples, iterations=self.iterations, lr=self.lr, init_std=self.init_std)

    def steps_per_decision(self, frameskip: int) -> int:
        """Env steps executed from each decision: ``replan_every``, or ``receding_horizon x frameskip`` if it is 0.

        Raises:
            ValueError: ``replan_every`` beyond the plan (``horizon x frameskip`` env steps).
        """
        if self.replan_every > self.horizon * frameskip:
            raise ValueError(f"PlanConfig.replan_every={self.replan_every} exceeds the plan's horizon x frameskip = "
                             f"{self.horizon * frameskip} env steps; lower it or raise horizon.")
        steps = self.replan_every or self.receding_horizon * frameskip
        if self.ensemble and steps >= self.horizon * frameskip:
            raise ValueError(f"PlanConfig.ensemble averages overlapping plans, but each plan runs to its end "
                             f"({steps} of {self.horizon * frameskip} env steps); set replan_every below "
                             f"{self.horizon * frameskip}.")
        return steps

    def validate(self) -> "PlanConfig":
        """Raise ``ValueError`` naming the bad field; return self. :meth:`__post_init__` checks each field; this adds
        the rules between fields and the chosen planner's own config."""
        self.__post_init__()  # fields may have been assigned since construction
        if not 1 <= self.receding_horizon <= self.horizon:
            raise ValueError(
                f"PlanConfig.receding_horizon={self.receding_horizon} must be in [1, horizon={self.horizon}]."
            )
        if self.planner == "cem" and self.elites > self.samples:
            raise ValueError(f"PlanConfig.elites={self.elites} exceeds samples={self.samples}.")
        {"cem": self.cem, "mppi": self.mppi, "adam": self.grad}[self.planner]().validate()
        return self


@dataclass
class PolicyConfig:
    """How the latent policy of :mod:`lewm_agent.policy` is shaped and trained (behaviour cloning with hindsight
    goals); ``lewm policy --set KEY=VALUE``."""

    hidden: int = 512
    """Width of the MLP's hidden layers."""
    depth: int = 3
    """Number of hidden layers (each Linear -> LayerNorm -> GELU)."""
    steps: int = 3000
    """Optimiser steps."""
    batch_size: int = 512
    """(start, goal) samples per optimiser step, drawn uniformly with replacement."""
    lr: float = 1e-3
    """Peak AdamW learning rate (cosine-decayed to 0 over ``steps`` after a short warm-up)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    max_goal_blocks: int = 0
    """Hindsight goals are drawn 1 .. max_goal_blocks action blocks ahead of the start frame
    (within the episode); 0 = ``2 * horizon``."""
    val_fraction: float = 0.1
    """Fraction of the training episodes whose samples are held out for the validation loss
    (at least one episode when > 0 and there are >= 2 episodes); 0 = no validation loss."""
    whiten_floor: float = 1e-3
    """The latents are whitened (PCA) before the MLP; eigenvalues of their covariance below
    ``whiten_floor`` x the largest are raised to it, so near-constant directions are not
    magnified by more than ``whiten_floor ** -0.5``. Whitening matters where few latent
    directions carry most of the variance (short training, no SIGReg): plain gradient descent
    then barely sees the small directions that hold the goal's direction."""
    seed: int = 0
    """Seed of the initialisation, the sample draws and the validation split."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "PolicyConfig":
        """Raise ``ValueError`` naming the bad field and the fix; return self for chaining."""
        for name in ("hidden", "depth", "steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PolicyConfig.{name} must be an integer >= 1, got {value!r}; e.g. {name}="
                                 f"{getattr(PolicyConfig, name)}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"PolicyConfig.lr must be a finite number > 0, got {self.lr!r}; e.g. lr=1e-3.")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"PolicyConfig.weight_decay must be >= 0, got {self.weight_decay!r}; e.g. 1e-4.")
        if not isinstance(self.max_goal_blocks, numbers.Integral) or self.max_goal_blocks < 0:
            raise ValueError(f"PolicyConfig.max_goal_blocks must be an integer >= 0 (0 = 2 * horizon), "
                             f"got {self.max_goal_blocks!r}.")
        if not (isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 1.0):
            raise ValueError(f"PolicyConfig.val_fraction must be in [0, 1), got {self.val_fraction!r}; "
                             "e.g. 0.1 (0 = no validation loss).")
        if not (isinstance(self.whiten_floor, (int, float)) and 0.0 < self.whiten_floor <= 1.0):
            raise ValueError(f"PolicyConfig.whiten_floor must be in (0, 1], got {self.whiten_floor!r}; e.g. 1e-3.")
        if not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"PolicyConfig.seed must be an integer, got {self.seed!r}.")
        return self

    def goal_blocks(self, horizon: int) -> int:
        """The effective ``max_goal_blocks`` for a planning horizon (0 -> 2 * horizon)."""
        return int(self.max_goal_blocks) or 2 * int(horizon)


@dataclass
class Preset:
    """A named bundle of the three configs plus the data it expects."""

    model: ModelConfig
    train: TrainConfig
    plan: PlanConfig
    description: str = ""
    episodes: int = 1000
    """Episodes to collect for this preset when the CLI collects data itself."""
    env_id: str | None = None
    """The task a per-task preset was tuned on (``lewm run --preset NAME`` collects it); None: any."""
    policy: str = "expert"
    """Collection policy of the preset's data (``expert`` or ``random``)."""
    latent_policy: PolicyConfig | None = None
    """A latent policy (:mod:`lewm_agent.policy`) trained on the same episodes after the world model, whose
    proposal starts each plan's search, or acts alone where ``plan.mode == "policy"`` (``lewm run``, ``lewm train``
    and ``compare.py`` train it); None: none."""

    def __post_init__(self) -> None:
        if self.plan.mode == "policy" and self.latent_policy is None:
            raise ValueError("Preset: plan.mode='policy' acts with a latent policy, but latent_policy is None; set "
                             "latent_policy=PolicyConfig(...) or plan.mode='plan'.")


def _tiny() -> Preset:
    return Preset(
        model=ModelConfig(
            image_size=32, patch_size=8, enc_width=32, enc_depth=2, enc_heads=2, enc_mlp_dim=64,
            latent_dim=16, projector_hidden=64, pred_width=32, pred_depth=2, pred_heads=2,
            pred_head_dim=16, pred_mlp_dim=64, pred_dropout=0.0, history=2, frameskip=2,
            sigreg_projections=64,
        ),
        train=TrainConfig(steps=50, batch_size=16, lr=1e-3, warmup_steps=5, log_every=5,
                          val_every=25, ckpt_every=25),
        plan=PlanConfig(samples=32, iterations=3, elites=4, horizon=3, receding_horizon=3),
        description="for tests: seconds on one CPU core",
        episodes=8,
    )


def _cpu() -> Preset:
    return Preset(
        model=ModelConfig(
            image_size=64, patch_size=16, enc_width=128, enc_depth=4, enc_heads=4, enc_mlp_dim=256,
            latent_dim=64, projector_hidden=512, pred_width=128, pred_depth=3, pred_heads=4,
            pred_head_dim=32, pred_mlp_dim=512, pred_dropout=0.1, history=1, frameskip=5,
            # the projector reads the 16 patch tokens in their slots (docs/tworoom_bare.md): on the
            # bare-dot TwoRoom 98% at 1,000 steps against 36% with the CLS token; Reacher 34% vs 36%
            enc_readout="flatten",
        ),
        train=TrainConfig(steps=2500, batch_size=128, lr=1e-3, warmup_steps=100, weight_decay=1e-3,
                          log_every=25, val_every=250, ckpt_every=250),
        # iCEM 100x5 (experiments/planners.py, same agents and pairs): TwoRoom 98% against the
        # reference CEM 300x10's 82% at 0.18x its planning time; Reacher 26% against 30% at 0.11x.
        plan=PlanConfig(samples=100, iterations=5, elites=10, horizon=5, receding_horizon=5, noise_beta=2.0,
                        keep_elites=3, sample_decay=1.25, select="best"),
        description="64x64 TwoRoom on a 2-core laptop in minutes",
        episodes=600,
    )


def _for_task(env_id: str, description: str, steps: int, episodes: int, policy: str = "expert",
              model: dict[str, Any] | None = None, plan: dict[str, Any] | None = None,
              latent_policy: PolicyConfig | None = None) -> Preset:
    """The ``cpu`` preset tuned for one task: ``steps`` optimiser steps on ``episodes`` of ``policy``."""
    base = _cpu()
    return Preset(
        model=dataclasses.replace(base.model, **(model or {})),
        train=dataclasses.replace(base.train, steps=steps),
        plan=dataclasses.replace(base.plan, **(plan or {})),
        description=description, episodes=episodes, env_id=env_id, policy=policy, latent_policy=latent_policy,
    )


def _tworoom() -> Preset:
    return _for_task("lewm/TwoRoom-v1", "TwoRoom (the paper's bare dot), 64 px: ~4 min of training on 2 CPU cores",
                     steps=1000, episodes=600)


def _reacher() -> Preset:
    # the reference's data: uniform random torques, 200-step episodes (its pairs come from them too). On the
    # same kind of pairs: 68% with it against 34% (history 1) / 42% (history 3, 3x the time) with expert data;
    # 1,000 episodes 80% against 300 episodes 68% (10k steps on 300: 48%) (docs/scaling_reacher-random.md)
    return _for_task("lewm/Reacher-v0", "DeepMind Control Reacher, 64 px, random-torque data as the reference's",
                     steps=2500, episodes=1000, policy="random")


def _pusht() -> Preset:
    # the reference's control (relative target offsets, lewm/PushT-v1); gym-pusht's absolute targets
    # (lewm/PushT-v0) gave 12% against random 10% (docs/scaling_pusht.md). On the `pusht` study's pairs
    # 2,000 episodes at 7,500 steps gave 26% (28.5 min) against 600 at 2,500 steps' 16-18% (10 min); in the
    # `tasks` table 16% against 18% before (41.5 min, each on its own pairs): no measurable gain there.
    # Planner: under the reference's success test (agent and block) the whole 5-block plan got 0-4%; planning
    # 3 blocks ahead and replanning after every block got 16% on the study's pairs (tied best of 9 settings
    # there, 2-16%) and 12% on the `tasks` agent's validation pairs (random 4% on both; docs/pusht_diagnosis.md).
    # Since 2026-12-07: history 3, and a latent policy whose proposal starts each search with std 0.5. On 350
    # pairs (7 pair sets of the study's evaluation file) history 3 at 7,500 steps got 23% this way against 13%
    # without the policy (random 1%); chosen on 3 sets, the other 4 gave 24% against 12% (docs/pusht_diagnosis.md)
    # Since 2026-12-07 (later): a decision at every env step, each executed action the mean of the running plans'
    # proposals for it (temporal ensembling): 49/150 on the study's sets 0-2 against 38/150 replanning every block;
    # replanning every step without the mean 32/150, the paper's CEM budget 36/150, the all-blocks cost 37/150.
    return _for_task("lewm/PushT-v1", "PushT (the reference's relative actions), 64 px", steps=7500, episodes=2000,
                     model={"history": 3},
                     plan={"horizon": 3, "receding_horizon": 1, "init_std": 0.5, "replan_every": 1, "ensemble": True},
                     latent_policy=PolicyConfig(max_goal_blocks=10))


def _cube() -> Preset:
    # Acts with a latent policy on LeWM's frozen latents, one block (5 steps) at a time: on the `cube` study's
    # pairs (sets 0-2, 150 pairs) the search alone got 4/150 and iCEM over one block started from the policy
    # 7-9/50 on set 0 against the policy's 13/50 (300 episodes): the latent cost leads the search away from what
    # the policy proposes. Five times the data (1,500 episodes, 5,000 steps, 21.7 min) left the search at 2% but
    # raised the policy from 33/150 = 22% to 72/150 = 48% (validation loss 0.72 -> 0.51); twice that again (3,000
    # episodes, 5,000 steps, 17.4 min) 77/150 = 51% (README, "OGBench cube").
    return _for_task("lewm/OGBench-cube-single-v0", "OGBench cube (single), 64 px; acts with its latent policy",
                     steps=5000, episodes=3000, plan={"horizon": 1, "receding_horizon": 1, "mode": "policy"},
                     latent_policy=PolicyConfig(max_goal_blocks=10))


def _metaworld_push() -> Preset:
    return _for_task("lewm/MetaWorld-push-v3", "Meta-World push, 64 px", steps=2500, episodes=600)


def _paper() -> Preset:
    return Preset(
        model=ModelConfig(),
        train=TrainConfig(),
        plan=PlanConfig(),
        description="LeWM reference: ViT-tiny 224/14 + 6-block predictor, one GPU",
        episodes=10_000,
    )


PRESETS: dict[str, Any] = {"tiny": _tiny, "cpu": _cpu, "paper": _paper, "tworoom": _tworoom, "reacher": _reacher,
                           "pusht": _pusht, "cube": _cube, "metaworld-push": _metaworld_push}
"""``tiny``/``cpu``/``paper`` fit any task; the others are the ``cpu`` preset tuned for one task (its
``env_id``, data and budget), each <= 90 minutes of training on 2 CPU cores (``compare.py --preset tasks``)."""


def preset(name: str) -> Preset:
    """A fresh copy of the named preset (``tiny``, ``cpu``, ``paper``, or a task's: ``tworoom``, ``reacher``,
    ``pusht``, ``cube``, ``metaworld-push``)."""
    if name not in PRESETS:
        raise KeyError(f"Unknown preset {name!r}; known presets: {sorted(PRESETS)}.")
    return PRESETS[name]()


def config_from_dict(cls, data: dict) -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys (no silent typos)."""
    for key in data:
        check_name(cls, key)
    return cls(**data)


def replace(cfg: Any, **overrides: Any) -> Any:
    """``dataclasses.replace`` with a clear error for unknown field names."""
    for key in overrides:
        check_name(type(cfg), key)
    return dataclasses.replace(cfg, **overrides)
