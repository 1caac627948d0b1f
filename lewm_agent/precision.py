"""Which floating-point precision is faster on a device, decided by measurement, once per process.

bf16 pays only where the hardware multiplies bf16 natively: CUDA GPUs from Ampere on, and CPUs
with AVX-512 bf16 or AMX. Measured on two 2-core AMD EPYC machines (torch 2.13, 2 threads):

- with AVX-512 bf16 (Zen 4): matmul 170-183 GFLOP/s fp32 against 397-407 bf16; autocast made the
  ``paper`` planner 0.61-0.72x the time and the ``cpu`` planner 0.82x;
- without (Zen 3, AVX2 only): 158 GFLOP/s fp32 against 0.3 bf16 for a 2048^3 matmul; autocast
  made the ``paper`` planner 7x slower and the ``cpu`` planner 7.8x slower.

- with AMX (Sapphire Rapids host of an H200 machine, 2 threads): the ``paper`` planner took 0.79x
  the fp32 time in bf16, the ``cpu`` planner 0.91x;
- on an H200, planning is bound by kernel launches: one env's ``paper`` CEM (300 samples) took
  0.36 s in bf16 against 0.14 s in fp32, while 8 envs (2,400 rows) took 0.32 s in bf16 against
  0.65 s in fp32 (``benchmarks/precision_matrix.py``).

So "auto" cannot be a constant: on CUDA it means bf16 where the GPU supports it, except for
planning batches of fewer than :data:`CUDA_BF16_MIN_ROWS` sequences (fp32 there); on a CPU it
times a predictor-sized matrix product in both precisions (about 0.1 s, cached) and picks bf16
only if it is clearly faster.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch

__all__ = ["PRECISIONS", "CUDA_BF16_MIN_ROWS", "bf16_is_faster", "resolve_precision", "planning_precision", "autocast"]

PRECISIONS = ("auto", "fp32", "bf16")
CUDA_BF16_MIN_ROWS = 1024
"""On CUDA, "auto" plans in bf16 only from this many (env, sample) rows per call (measured, above)."""
_CACHE: dict[str, bool] = {}


def _time_linear(dtype: torch.dtype, rows: int = 1024, width: int = 192, out: int = 2048, reps: int = 5) -> float:
    x = torch.randn(rows, width).to(dtype)
    w = torch.randn(out, width).to(dtype)
    torch.nn.functional.linear(x, w)  # warm-up (kernel selection)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.nn.functional.linear(x, w)
        best = min(best, time.perf_counter() - t)
    return best


def bf16_is_faster(device: torch.device) -> bool:
    """True if bf16 matrix products are faster than fp32 on ``device`` (CPU: measured; cached)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    if "cpu" not in _CACHE:
        with torch.inference_mode():
            fp32, bf16 = _time_linear(torch.float32), _time_linear(torch.bfloat16)
        _CACHE["cpu"] = bf16 < 0.8 * fp32
    return _CACHE["cpu"]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for ``device``; ``fp32``/``bf16`` as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {list(PRECISIONS)}.")
    if precision == "auto":
        return "bf16" if bf16_is_faster(device) else "fp32"
    return precision


def planning_precision(requested: str, resolved: str, device: torch.device, rows: int) -> str:
    """The precision of one planning call of ``rows`` (env, sample) sequences: ``resolved``, except
    that ``auto`` on CUDA stays in fp32 for small calls, which are bound by kernel launches."""
    if requested == "auto" and device.type == "cuda" and rows < CUDA_BF16_MIN_ROWS:
        return "fp32"
    return resolved


def autocast(precision: str, device: torch.device):
    """A bf16 autocast context for ``precision == "bf16"``, else a no-op context."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
