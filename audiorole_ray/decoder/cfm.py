"""Optimal-transport conditional flow matching (OT-CFM) as CosyVoice trains and samples it.

Path (Meta's ``flow-matching`` library, with a scheduler for CosyVoice's sigma_min):
``x_t = (1 - (1 - s) t) z + t x1``, target velocity ``u = x1 - (1 - s) z``, s = 1e-6.
Training: t ~ U(0, 1) warped by ``1 - cos(t pi / 2)`` (more steps near the noise end), the
conditions (encoder output, speaker vector, prompt mel) dropped together with probability
``training_cfg_rate`` for classifier-free guidance, and an MSE masked to the real frames,
summed and divided by (real frames x mel bins).
Sampling: Euler steps on the same cosine time grid (``flow-matching``'s ODE solver over
torchdiffeq), velocity ``(1 + w) v(x | c) - w v(x | 0)``.

The module holds only ``estimator``, as CosyVoice's ``ConditionalCFM`` does.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from audiorole_ray.errors import require


def _fm():
    require("flow_matching", "'audiorole-ray[decoder]'", "the flow decoder's probability path and ODE solver")
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import Scheduler, SchedulerOutput
    from flow_matching.solver import ODESolver

    return AffineProbPath, Scheduler, SchedulerOutput, ODESolver


def _ot_path(sigma_min: float):
    AffineProbPath, Scheduler, SchedulerOutput, _ = _fm()

    class SigmaMinOTScheduler(Scheduler):
        """alpha_t = t, sigma_t = 1 - (1 - sigma_min) t: the OT path that ends at a Gaussian
        of width sigma_min around the data point instead of on it."""

        def __call__(self, t):
            return SchedulerOutput(alpha_t=t, sigma_t=1 - (1 - sigma_min) * t,
                                   d_alpha_t=torch.ones_like(t), d_sigma_t=torch.full_like(t, -(1 - sigma_min)))

        def snr_inverse(self, snr):
            return snr / (1 + (1 - sigma_min) * snr)

    return AffineProbPath(SigmaMinOTScheduler())


def cosine_warp(t: torch.Tensor) -> torch.Tensor:
    return 1 - torch.cos(t * 0.5 * math.pi)


class ConditionalCFM(nn.Module):
    def __init__(self, estimator: nn.Module, sigma_min: float = 1e-6, training_cfg_rate: float = 0.2,
                 inference_cfg_rate: float = 0.7, t_scheduler: str = "cosine"):
        super().__init__()
        self.estimator = estimator
        self.sigma_min, self.t_scheduler = sigma_min, t_scheduler
        self.training_cfg_rate, self.inference_cfg_rate = training_cfg_rate, inference_cfg_rate
        self._path = _ot_path(sigma_min)

    def _warp(self, t):
        return cosine_warp(t) if self.t_scheduler == "cosine" else t

    def compute_loss(self, x1, mask, mu, spks=None, cond=None, generator: torch.Generator | None = None):
        """x1, mu, cond: (B, 80, T); mask (B, 1, T); spks (B, 80). Returns (loss, x_t)."""
        b = x1.shape[0]
        t = self._warp(torch.rand(b, device=x1.device, dtype=x1.dtype, generator=generator))
        z = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
        sample = self._path.sample(x_0=z, x_1=x1, t=t)
        if self.training and self.training_cfg_rate > 0:
            keep = (torch.rand(b, device=x1.device, generator=generator) > self.training_cfg_rate).to(x1.dtype)
            mu = mu * keep[:, None, None]
            spks = spks * keep[:, None] if spks is not None else None
            cond = cond * keep[:, None, None] if cond is not None else None
        pred = self.estimator(sample.x_t, mask, mu, t, spks, cond)
        err = ((pred - sample.dx_t) * mask).pow(2).sum()
        return err / (mask.sum() * x1.shape[1]), sample.x_t

    @torch.no_grad()
    def forward(self, mu, mask, n_timesteps: int = 10, temperature: float = 1.0, spks=None, cond=None,
                cfg_rate: float | None = None, seed: int | None = 0):
        """Sample a mel (B, 80, T) from noise by Euler steps with classifier-free guidance."""
        *_, ODESolver = _fm()
        w = self.inference_cfg_rate if cfg_rate is None else cfg_rate
        gen = torch.Generator(device=mu.device).manual_seed(seed) if seed is not None else None
        z = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=gen) * temperature
        grid = self._warp(torch.linspace(0, 1, n_timesteps + 1, device=mu.device, dtype=mu.dtype))
        zeros = (torch.zeros_like(mu), None if spks is None else torch.zeros_like(spks),
                 None if cond is None else torch.zeros_like(cond))

        def velocity(x, t):
            v = self.estimator(x, mask, mu, t, spks, cond)
            if w > 0:
                v = (1.0 + w) * v - w * self.estimator(x, mask, zeros[0], t, zeros[1], zeros[2])
            return v

        return ODESolver(velocity_model=velocity).sample(x_init=z, step_size=None, method="euler", time_grid=grid)
