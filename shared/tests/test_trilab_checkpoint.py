import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from trilab.checkpoint import (
    CheckpointError,
    atomic_save,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    weights_digest,
)
from trilab.seed import seed_everything


def _model_and_optim(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, optimizer, scheduler


def test_round_trip_restores_model_optimizer_scheduler(tmp_path):
    model, optimizer, scheduler = _model_and_optim(0)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = save_checkpoint(
        tmp_path / "checkpoints" / "last.pt",
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        epoch=3,
        extra={"best": 1.5},
    )
    assert latest_checkpoint(tmp_path) == path

    other, other_opt, other_sched = _model_and_optim(1)
    state = load_checkpoint(path, model=other, optimizer=other_opt, scheduler=other_sched)
    assert state["epoch"] == 3 and state["extra"] == {"best": 1.5}
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
    assert other_sched.get_last_lr() == scheduler.get_last_lr()
    assert other_opt.state_dict()["state"][0]["step"] == 1


def test_checkpoint_survives_a_kill_in_the_middle_of_writing(tmp_path):
    path = tmp_path / "last.pt"
    script = tmp_path / "writer.py"
    script.write_text(
        textwrap.dedent(
            f"""
        import os, signal, torch
        from trilab.checkpoint import save_checkpoint
        model = torch.nn.Linear(4, 4)
        torch.nn.init.constant_(model.weight, 1.0)
        save_checkpoint({str(path)!r}, model=model, epoch=1)

        def dying_save(obj, handle, *args, **kwargs):
            handle.write(b"half a checkpoint" * 4096)
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = dying_save
        torch.nn.init.constant_(model.weight, 2.0)
        save_checkpoint({str(path)!r}, model=model, epoch=2)
        """
        )
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    model = torch.nn.Linear(4, 4)
    state = load_checkpoint(path, model=model)
    assert state["epoch"] == 1
    assert torch.all(model.weight == 1.0)
    orphans = [p for p in tmp_path.iterdir() if p.name.startswith(".last.pt.")]
    assert len(orphans) == 1  # what the next run in this folder clears
    assert remove_stale_temporaries(tmp_path) == orphans
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "writer.py"]


def _train(model, optimizer, loader, epochs, history):
    for epoch in epochs:
        order = []
        for (x,) in loader:
            order.append(x[:, 0].long().tolist())
            noise = torch.randn(()) * 0.01 + float(np.random.rand()) * 0.0
            loss = (model(x) ** 2).mean() + noise
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history[epoch] = (order, torch.rand(()).item())


def test_resume_continues_with_the_same_batches_and_random_draws(tmp_path):
    data = TensorDataset(torch.arange(20, dtype=torch.float32).unsqueeze(1).repeat(1, 3))

    generator = seed_everything(7)
    model, optimizer, _ = _model_and_optim(0)
    loader = DataLoader(data, batch_size=4, shuffle=True, generator=generator)
    uninterrupted: dict = {}
    _train(model, optimizer, loader, range(3), uninterrupted)

    generator = seed_everything(7)
    model, optimizer, _ = _model_and_optim(0)
    loader = DataLoader(data, batch_size=4, shuffle=True, generator=generator)
    resumed: dict = {}
    _train(model, optimizer, loader, range(1), resumed)
    path = save_checkpoint(
        tmp_path / "last.pt",
        model=model,
        optimizer=optimizer,
        epoch=0,
        generators={"loader": generator},
    )
    # a fresh process would start from other states: scramble them before resuming
    seed_everything(12345)
    generator = torch.Generator().manual_seed(999)
    model, optimizer, _ = _model_and_optim(5)
    loader = DataLoader(data, batch_size=4, shuffle=True, generator=generator)
    state = load_checkpoint(
        path, model=model, optimizer=optimizer, generators={"loader": generator}
    )
    _train(model, optimizer, loader, range(state["epoch"] + 1, 3), resumed)

    assert resumed == uninterrupted


def test_atomic_save_leaves_no_temp_files(tmp_path):
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_missing_corrupt_and_mismatched_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt", model=torch.nn.Linear(2, 2))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_checkpoint(corrupt, model=torch.nn.Linear(2, 2))
    path = save_checkpoint(tmp_path / "small.pt", model=torch.nn.Linear(2, 2), epoch=0)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_checkpoint(path, model=torch.nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match="no optimizer state"):
        model = torch.nn.Linear(2, 2)
        load_checkpoint(path, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1))


def test_each_rank_gets_its_own_random_state_back(tmp_path):
    model = torch.nn.Linear(2, 2)
    states = []
    for seed in (10, 11):  # what two ranks' generators hold when the checkpoint is written
        seed_everything(seed)
        states.append(capture_rng_state())
    path = save_checkpoint(tmp_path / "last.pt", model=model, epoch=0, rng_per_rank=states)
    expected = []
    for seed in (10, 11):
        seed_everything(seed)
        expected.append((torch.rand(3), np.random.rand(), random.random()))
    for rank in (0, 1):
        seed_everything(99)
        load_checkpoint(path, model=model, rank=rank)
        drawn = (torch.rand(3), np.random.rand(), random.random())
        assert torch.equal(drawn[0], expected[rank][0]) and drawn[1:] == expected[rank][1:]
    # a single-process checkpoint keeps restoring its one state for any rank
    seed_everything(12)
    single = save_checkpoint(tmp_path / "single.pt", model=model, epoch=0)
    after_save = torch.rand(3)
    load_checkpoint(single, model=model, rank=1)
    assert torch.equal(torch.rand(3), after_save)


def test_resuming_with_another_number_of_processes_warns(tmp_path, recwarn):
    model = torch.nn.Linear(2, 2)
    states = [capture_rng_state(), capture_rng_state()]
    two = save_checkpoint(tmp_path / "two.pt", model=model, epoch=0, rng_per_rank=states)
    one = save_checkpoint(tmp_path / "one.pt", model=model, epoch=0)
    load_checkpoint(two, model=model, rank=1, world_size=2)
    load_checkpoint(one, model=model, world_size=1)
    load_checkpoint(one, model=model)  # inference and other callers say nothing
    assert not recwarn.list
    with pytest.warns(UserWarning, match="2 process.*resumed by 1"):
        load_checkpoint(two, model=model, world_size=1)
    with pytest.warns(UserWarning, match="1 process.*resumed by 4"):
        load_checkpoint(one, model=model, rank=3, world_size=4)


def test_weights_digest_names_the_weights_whatever_wraps_them():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    before = weights_digest(model)
    assert weights_digest(torch.compile(model, backend="eager")) == before
    model[1].running_mean += 1  # buffers count: clustering artefacts depend on them too
    assert weights_digest(model) != before
