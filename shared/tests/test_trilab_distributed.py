import json
import subprocess
import textwrap

import torch

from trilab.distributed import init_distributed
from trilab.testing import torchrun_command

WORKER = """
import json, sys
from pathlib import Path
import torch
from torch.utils.data import DataLoader, TensorDataset
from trilab.distributed import init_distributed
from trilab.runlog import RunLogger
from trilab.checkpoint import save_checkpoint

out = Path(sys.argv[1])
with init_distributed(device="cpu") as ctx:
    assert ctx.is_distributed and ctx.world_size == 2
    torch.manual_seed(0)
    model = ctx.wrap_model(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g),
                         torch.arange(32))
    sampler = ctx.sampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    seen = []
    with RunLogger(out / "run", enabled=ctx.is_main, tensorboard=False) as log:
        for epoch in range(2):
            sampler.set_epoch(epoch)
            for x, y, index in loader:
                seen.extend(index.tolist()) if epoch == 0 else None
                loss = torch.nn.functional.mse_loss(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            mean_loss = ctx.all_reduce_mean(loss.detach())
            log.log_scalars({"loss": mean_loss}, step=epoch)
        log.write_metrics({"final_loss": mean_loss.item()})
        if ctx.is_main:
            save_checkpoint(out / "last.pt", model=model, epoch=1)
    weights = [p.detach().tolist() for p in model.module.parameters()]
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"weights": weights, "seen": seen}))
"""


def _run_two_workers(source: str, tmp_path) -> None:
    """Run ``source`` as a two-process torchrun job (gloo) with ``tmp_path`` as its argument."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(source))
    result = subprocess.run(
        torchrun_command(str(script), str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_process_gloo_job_agrees_on_weights(tmp_path):
    _run_two_workers(WORKER, tmp_path)
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    rank1 = json.loads((tmp_path / "rank1.json").read_text())
    assert rank0["weights"] == rank1["weights"]
    # the sampler splits the data: disjoint halves covering every index
    assert not set(rank0["seen"]) & set(rank1["seen"])
    assert sorted(rank0["seen"] + rank1["seen"]) == list(range(32))
    # only rank 0 logs and checkpoints
    assert (tmp_path / "run" / "metrics.json").exists()
    assert (tmp_path / "last.pt").exists()
    assert len((tmp_path / "run" / "scalars.jsonl").read_text().splitlines()) == 2


def test_single_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with init_distributed(device="cpu") as ctx:
        assert not ctx.is_distributed and ctx.is_main and ctx.world_size == 1
        model = torch.nn.Linear(2, 2)
        assert ctx.wrap_model(model) is model
        assert ctx.sampler(list(range(4))) is None
        t = torch.tensor([3.0])
        assert torch.equal(ctx.all_reduce_mean(t), t)


STOP_WORKER = """
import json, os, signal, sys
from pathlib import Path
from trilab.distributed import init_distributed
from trilab.stopping import StopSignal

out = Path(sys.argv[1])
with init_distributed(device="cpu") as ctx, StopSignal(ctx, sync_every=4) as stop:
    step = 0
    while step < 50:
        step += 1
        if ctx.rank == 1 and step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # only this rank is signalled
        if stop.requested(step):
            break
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(
        {"step": step, "signal": stop.signal_name, "exit": stop.exit_code}))
"""


def test_a_signal_on_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    _run_two_workers(STOP_WORKER, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # rank 1 was signalled at step 3; the ranks compare notes every 4 steps
    assert ranks[0] == ranks[1] == {"step": 4, "signal": "SIGTERM", "exit": 143}
