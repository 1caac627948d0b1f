"""Sampling around a mean: white or coloured (1/f^beta along the horizon) Gaussian noise, clamping."""

from __future__ import annotations

import torch


def clamp(x: torch.Tensor, low: torch.Tensor | None, high: torch.Tensor | None) -> torch.Tensor:
    """Clamp (..., Ad) into the (Ad,) bounds [low, high]; either bound None = unbounded on that side."""
    if low is not None:
        x = torch.maximum(x, low)
    if high is not None:
        x = torch.minimum(x, high)
    return x


def _colour_filter(H: int, beta: float, device: torch.device) -> torch.Tensor:
    """(H, H) linear map K such that ``white (.., H) @ K`` has power spectrum ~ 1/f^beta along H and
    unit variance per element (columns normalised; the filter is circular, so all columns match)."""
    f = torch.fft.rfftfreq(H, device=device)  # (H//2+1,) cycles per block
    f[0] = 1.0 / H  # lowest frequency stands in for DC, as in iCEM's powerlaw_psd_gaussian
    scale = f.pow(-beta / 2.0)  # amplitude ~ f^(-beta/2) -> power ~ f^(-beta)
    eye = torch.eye(H, device=device)
    K = torch.fft.irfft(torch.fft.rfft(eye, dim=-1) * scale, n=H, dim=-1)  # row i = filtered e_i
    return K / K.pow(2).sum(dim=0, keepdim=True).sqrt()


def coloured_noise(shape: tuple[int, int, int, int], beta: float, device: torch.device,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """(E, S, H, Ad) standard Gaussian noise, correlated along H with power spectrum 1/f^beta.

    ``beta=0`` is exactly ``torch.randn(shape, generator=generator)`` (same numbers for the same
    generator state); beta>0 (iCEM: 2-2.5) filters that white noise along H, keeping unit variance.
    """
    white = torch.randn(shape, device=device, generator=generator)
    H = shape[2]
    if beta == 0 or H < 2:
        return white
    K = _colour_filter(H, beta, white.device)
    return torch.einsum("eshd,hk->eskd", white, K)


def sample_around(mean: torch.Tensor, std: torch.Tensor, n: int, beta: float,
                  low: torch.Tensor | None, high: torch.Tensor | None,
                  generator: torch.Generator | None) -> torch.Tensor:
    """n sequences ~ N(mean, std^2) per env with 1/f^beta noise, clamped; sample 0 = clamp(mean).

    mean, std: (E, H, Ad) normalised units. Returns (E, n, H, Ad).
    """
    E, H, Ad = mean.shape
    noise = coloured_noise((E, n, H, Ad), beta, mean.device, generator)
    samples = clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise, low, high)
    samples[:, 0] = clamp(mean, low, high)
    return samples
