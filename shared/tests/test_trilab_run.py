"""The one run set-up: the per-rank seed rule, the resolved config in the run folder, and the
run folder's names taken from one module."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import trilab.run
from trilab.distributed import DistContext
from trilab.run import start_run
from trilab.run_files import CONFIG_FILE, per_rank_file
from trilab.run_folder import RunFolderError
from trilab.seed import rank_seed


def _cfg(**changes):
    base = {
        "device": "cpu",
        "seed": 5,
        "deterministic": False,
        "resume": False,
        "overwrite": False,
        "tensorboard": False,
        "lr": 0.5,
        "scaled_lr": "${lr}",
    }
    return OmegaConf.create({**base, **changes})


def test_the_per_rank_seed_is_seed_plus_rank():
    assert [rank_seed(5, rank) for rank in range(3)] == [5, 6, 7]


@pytest.mark.parametrize("rank", [0, 3])
def test_each_rank_seeds_its_generators_with_seed_plus_rank(tmp_path, monkeypatch, rank):
    monkeypatch.setattr(
        trilab.run, "init_distributed", lambda device: DistContext(rank=rank, world_size=4)
    )
    with start_run(_cfg(), project="test", folder=tmp_path) as run:
        drawn = (torch.rand(2), np.random.rand(), random.random())
        assert run.seed == 5
    torch.manual_seed(5 + rank), np.random.seed(5 + rank), random.seed(5 + rank)
    assert torch.equal(drawn[0], torch.rand(2))
    assert drawn[1:] == (np.random.rand(), random.random())
    # rank 0 alone writes the run's files
    assert (tmp_path / CONFIG_FILE).is_file() == (rank == 0)


def test_the_config_is_saved_resolved_in_the_log_folder(tmp_path):
    with start_run(_cfg(), project="test", folder=tmp_path / "run", log_folder=tmp_path / "logs"):
        pass
    saved = OmegaConf.load(tmp_path / "logs" / CONFIG_FILE)
    assert saved.scaled_lr == 0.5 and "${" not in (tmp_path / "logs" / CONFIG_FILE).read_text()
    assert not (tmp_path / "run" / CONFIG_FILE).exists()


def test_overwrite_also_removes_the_files_of_a_torchrun_runs_ranks(tmp_path):
    (tmp_path / "scalars.jsonl").write_text('{"step": 0}\n')
    stale = tmp_path / per_rank_file("weights", 1, ".txt")
    stale.write_text("an old run's rank 1")
    with pytest.raises(RunFolderError, match="overwrite=true"):
        with start_run(_cfg(), project="test", folder=tmp_path):
            pass
    with start_run(_cfg(overwrite=True), project="test", folder=tmp_path):
        assert not stale.exists()
