import json
import subprocess
import textwrap

import torch

from trilab.distributed import init_distributed
from trilab.testing import torchrun_command


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


def test_single_process_context_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with init_distributed(device="cpu") as ctx:
        assert not ctx.is_distributed and ctx.is_main and ctx.world_size == 1
        model = torch.nn.Linear(2, 2)
        assert ctx.wrap_model(model) is model


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
