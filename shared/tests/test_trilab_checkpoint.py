import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from trilab.atomic import remove_stale_temporaries
from trilab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trilab.rng import capture_rng_state
from trilab.seed import seed_everything
from trilab.weights import weights_digest


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
        checkpointables={"optimizer": optimizer, "scheduler": scheduler},
        epoch=3,
        extra={"best": 1.5},
    )

    other, other_opt, other_sched = _model_and_optim(1)
    state = load_checkpoint(
        path, model=other, checkpointables={"optimizer": other_opt, "scheduler": other_sched}
    )
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
    model = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=r"no state for optimizer \(SGD\(lr=1"):
        load_checkpoint(
            path, model=model, checkpointables={"optimizer": torch.optim.SGD(model.parameters(), 1)}
        )


def test_a_resume_must_checkpoint_the_same_objects_as_the_run_that_wrote(tmp_path):
    """A second optimizer (drag's region step) is one more name in the mapping: a checkpoint
    without its state, or with state this run has no object for, is refused by name."""
    model = torch.nn.Linear(2, 2)
    main = torch.optim.Adam(model.parameters(), lr=0.1)
    extra = torch.optim.Adam(model.parameters(), lr=0.2)
    both = save_checkpoint(
        tmp_path / "both.pt",
        model=model,
        epoch=0,
        checkpointables={"optimizer": main, "region": extra},
    )
    one = save_checkpoint(
        tmp_path / "one.pt", model=model, epoch=0, checkpointables={"optimizer": main}
    )
    with pytest.raises(
        CheckpointError, match=r"both.pt also holds the state of region \(Adam\(lr=0.2"
    ):
        load_checkpoint(both, model=model, checkpointables={"optimizer": main})
    with pytest.raises(CheckpointError, match=r"one.pt holds no state for region"):
        load_checkpoint(one, model=model, checkpointables={"optimizer": main, "region": extra})
    load_checkpoint(both, model=model, checkpointables={"optimizer": main, "region": extra})


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
