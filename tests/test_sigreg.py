"""SIGReg: ~1 on N(0, I), large on collapsed / shifted / scaled batches, gradients, global batch under gloo."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lewm_agent.model.sigreg import SIGReg, epps_pulley_null_mean

B, D = 512, 32


def _value(z, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SIGReg(num_projections=256)(z, generator=g).item()


def test_gaussian_samples_score_near_the_null_mean():
    z = torch.randn(B, D, generator=torch.Generator().manual_seed(1))
    value = _value(z)
    # the statistic is B * |phi_B - phi_0|^2 integrated: its null mean is ~1.06, independent of B
    assert abs(value - epps_pulley_null_mean()) < 0.5, value


@pytest.mark.parametrize(
    "name,make",
    [
        ("collapsed", lambda z: torch.zeros_like(z) + 0.3),
        ("shifted", lambda z: z + 1.0),
        ("scaled", lambda z: z * 3.0),
        ("shrunk", lambda z: z * 0.2),
        ("low_rank", lambda z: z[:, :1].expand(-1, D).clone()),
    ],
)
def test_non_gaussian_samples_score_large(name, make):
    z = make(torch.randn(B, D, generator=torch.Generator().manual_seed(2)))
    assert _value(z) > 10 * epps_pulley_null_mean(), name


def test_directions_are_fresh_at_every_call():
    reg = SIGReg(num_projections=8)
    assert not torch.equal(reg.directions(4, torch.device("cpu")), reg.directions(4, torch.device("cpu")))


def test_gradients_flow_and_point_towards_gaussianity():
    z = (torch.randn(B, D) * 0.3).requires_grad_(True)
    reg = SIGReg(num_projections=128)
    reg(z).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    # a few gradient steps on the embeddings themselves make them more Gaussian
    before = _value(z.detach())
    opt = torch.optim.SGD([z], lr=1.0)
    for _ in range(50):
        opt.zero_grad()
        reg(z).backward()
        opt.step()
    assert _value(z.detach()) < before / 2


def test_time_steps_are_averaged():
    z = torch.randn(3, B, D)
    z[1] = 0.0  # one collapsed time step raises the mean over steps
    assert _value(z) > _value(z[[0, 2]]) * 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, z_full, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        z_local = z_full.chunk(world, dim=1)[rank].clone().requires_grad_(True)
        g = torch.Generator().manual_seed(123)  # rank 0's directions are broadcast anyway
        value = SIGReg(num_projections=64)(z_local, generator=g)
        value.backward()
        out[rank] = torch.cat([value.detach().reshape(1), z_local.grad.reshape(-1)])
    finally:
        dist.destroy_process_group()


def test_distributed_value_equals_single_process_on_the_concatenated_batch():
    world, T = 2, 2
    z_full = torch.randn(T, 64, 8) * 0.7 + 0.1
    manager = mp.Manager()
    out = manager.dict()
    mp.start_processes(_worker, args=(world, _free_port(), z_full, out), nprocs=world, join=True, start_method="spawn")
    g = torch.Generator().manual_seed(123)
    z = z_full.clone().requires_grad_(True)
    single = SIGReg(num_projections=64)(z, generator=g)
    single.backward()
    for rank in range(world):
        assert torch.allclose(out[rank][0], single.detach(), rtol=1e-5, atol=1e-6)
    # each rank's gradient, summed over ranks as DDP's averaging x world does, is the global gradient
    grads = [out[r][1:].reshape(T, 32, 8) for r in range(world)]
    expected = z.grad.chunk(world, dim=1)
    for rank in range(world):
        assert torch.allclose(grads[rank] / world, expected[rank], rtol=1e-4, atol=1e-6)


def _reference_sigreg(z, u, t, weights, phi0):
    """The statistic written out with plain autograd (all knots, cos and sin of every angle)."""
    th = (z @ u).unsqueeze(-1) * t  # (T, B, M, K)
    n = z.shape[1]
    err = (torch.cos(th).sum(1) / n - phi0) ** 2 + (torch.sin(th).sum(1) / n) ** 2
    return (n * (err @ weights)).mean()


def test_value_and_gradient_equal_the_plain_autograd_formula():
    reg = SIGReg(num_projections=96, num_knots=17)
    z = (torch.randn(3, 40, 12, generator=torch.Generator().manual_seed(5)) * 0.8 + 0.2).requires_grad_(True)
    value = reg(z, generator=torch.Generator().manual_seed(9))
    (grad,) = torch.autograd.grad(value, z)
    z_ref = z.detach().clone().requires_grad_(True)
    u = reg.directions(12, z.device, torch.Generator().manual_seed(9))
    expected = _reference_sigreg(z_ref, u, reg.t, reg.weights, reg.phi0)
    expected.backward()
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, z_ref.grad, rtol=1e-4, atol=1e-6)
