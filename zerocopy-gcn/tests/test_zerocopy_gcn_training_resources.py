"""What zerocopy-gcn's training holds is let go however the run ends: a full disk under torch's
checkpoint writer is one line with the previous ``last.pt`` intact, and a failure in the middle
of training still closes the feature fetcher and the host-table registrations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import zerocopy_gcn.training as training
from trilab.errors import WriteError
from trilab.testing import compose_config, disk_full_after

PROJECT = Path(__file__).resolve().parents[1]
TINY = [
    "data.num_nodes=600",
    "data.avg_degree=6",
    "data.feat_dim=16",
    "data.num_classes=3",
    "fanouts=[4,4]",
    "model.hidden=16",
    "batch_size=100",
    "tensorboard=false",
    "device=cpu",
]


def _cfg(data_root: Path, *overrides: str):
    return compose_config(PROJECT / "configs", [*TINY, f"data.root={data_root}", *overrides])


def test_a_full_disk_under_torchs_checkpoint_writer_is_one_line_and_keeps_last_pt(
    tmp_path, monkeypatch
):
    """On a full disk torch's zip writer raises ``RuntimeError: [enforce fail at
    inline_container.cc:...] unexpected pos``; the run answers as GLA-GCN's does."""
    monkeypatch.chdir(tmp_path)
    training.train(_cfg(tmp_path / "data", "epochs=1"))
    last = tmp_path / "checkpoints" / "last.pt"
    before = last.read_bytes()
    with (
        disk_full_after(5000, under=tmp_path / "checkpoints"),
        pytest.raises(WriteError) as info,
    ):
        training.train(_cfg(tmp_path / "data", "epochs=2", "resume=true"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write {tmp_path / 'checkpoints'}")
    assert os.strerror(28) in message  # ENOSPC: "No space left on device"
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]


class Failure(Exception):
    pass


def test_a_failure_mid_training_still_closes_fetchers_and_registrations(tmp_path, monkeypatch):
    closed = []

    class Registration:
        def close(self):
            closed.append("registration")

    real_sampling_arrays, real_build_fetcher = training.sampling_arrays, training.build_fetcher

    def sampling_arrays(*args, **kwargs):
        device, csr, registrations = real_sampling_arrays(*args, **kwargs)
        return device, csr, [*registrations, Registration()]

    def build_fetcher(*args, **kwargs):
        fetcher = real_build_fetcher(*args, **kwargs)
        close = fetcher.close
        fetcher.close = lambda: (closed.append("fetcher"), close())
        return fetcher

    def evaluate(*args, **kwargs):
        raise Failure("the first epoch's evaluation fails")

    monkeypatch.setattr(training, "sampling_arrays", sampling_arrays)
    monkeypatch.setattr(training, "build_fetcher", build_fetcher)
    monkeypatch.setattr(training, "evaluate", evaluate)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Failure):
        training.train(_cfg(tmp_path / "data", "epochs=1"))
    assert sorted(closed) == ["fetcher", "registration"]
