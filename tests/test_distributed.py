"""`lewm train` under torchrun: DistributedDataParallel on CPU (gloo), as on GPUs (NCCL).

torchrun with one process runs the same DDP code path as several GPUs do; it must train exactly the
weights of a plain single-process run (one rank's all-reduce is the identity), and two processes
must train one agent.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file


def _train(nproc: int | None, data, out, steps: int = 6) -> subprocess.CompletedProcess:
    """``lewm train`` (tiny preset) in a subprocess with one thread: plainly (``nproc=None``) or under
    torchrun with ``nproc`` processes."""
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same thread count: the same float arithmetic
    launch = [] if nproc is None else ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = [sys.executable, *launch, "-m", "lewm_agent.cli", "train", "--preset", "tiny", "--data", str(data),
           "--out", str(out), "--steps", str(steps), "--device", "cpu"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _weights(run_dir) -> dict[str, torch.Tensor]:
    files = sorted((run_dir / "agent").glob("*.safetensors"))
    assert files, f"no weights in {run_dir / 'agent'}"
    return load_file(str(files[0]))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_torchrun_one_process_uses_ddp_and_matches_the_plain_run(tiny_data, tmp_path):
    for nproc, name in ((None, "plain"), (1, "ddp")):
        r = _train(nproc, tiny_data, tmp_path / name)
        assert r.returncode == 0, r.stderr[-2000:]
    cfg = json.loads((tmp_path / "ddp" / "train_config.json").read_text())
    assert cfg["world_size"] == 1 and cfg["ddp_backend"] == "gloo"
    assert json.loads((tmp_path / "plain" / "train_config.json").read_text())["ddp_backend"] is None
    plain, ddp = _weights(tmp_path / "plain"), _weights(tmp_path / "ddp")
    assert plain.keys() == ddp.keys()
    for k in plain:
        assert torch.equal(ddp[k], plain[k]), k


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_torchrun_two_processes_train_one_agent(tiny_data, tmp_path):
    r = _train(2, tiny_data, tmp_path / "ddp2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("trained 6 steps") == 1  # rank 0 reports, once
    cfg = json.loads((tmp_path / "ddp2" / "train_config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["ddp_backend"] == "gloo"
    assert all(torch.isfinite(v).all() for v in _weights(tmp_path / "ddp2").values())
