import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glagcn.data.synthesize import synthesize
from glagcn.evaluate import evaluate
from glagcn.training import train
from trilab.testing import compose_config, modules_loaded_by

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthesize(
        root,
        seed=2,
        frames=40,
        noise_px=2.0,
        subjects=("S1", "S8", "S9"),
        actions=("Walking 1", "Sitting 1"),
    )
    return root


def _compose(overrides):
    return compose_config(CONFIGS, overrides)


def _small(root, *extra):
    return [
        f"data.root={root}",
        "data.train_subjects=[S1]",
        "data.val_subjects=[S8]",
        "data.test_subjects=[S9]",
        "model.channels=8",
        "batch_size=16",
        "train.max_batches_per_epoch=3",
        "device=cpu",
        *extra,
    ]


def test_train_resume_and_evaluate(synthetic, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)  # outside a Hydra app the run directory is the working directory
    metrics = train(_compose(_small(synthetic, "epochs=2")))
    for key in ("mpjpe_mm", "p_mpjpe_mm", "n_mpjpe_mm", "mpjve_mm", "per_action", "per_subject"):
        assert key in metrics
    assert set(metrics["per_action"]) == {"Sitting", "Walking"}  # takes grouped by action
    assert set(metrics["per_take"]) == {"Sitting 1", "Walking 1"}
    assert {"mean_pose", "linear_regression"} == set(metrics["baselines"])
    assert json.loads((run / "metrics.json").read_text())["mpjpe_mm"] == metrics["mpjpe_mm"]
    assert (run / "training_curves.png").is_file()
    lines = (run / "scalars.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1]

    train(_compose(_small(synthetic, "epochs=3", "resume=true")))
    lines = (run / "scalars.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines]
    assert steps == [0, 1, 2]  # resumed after epoch 1, did only epoch 2

    evaluated = evaluate(_compose(_small(synthetic, f"checkpoint={run}/checkpoints/last.pt")))
    assert evaluated["mpjpe_mm"] > 0 and evaluated["frames"] == metrics["frames"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_one_step(experiment, synthetic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = [
        f"+experiment={experiment}",
        f"data.root={synthetic}",
        "model.channels=8",
        "epochs=1",
        "batch_size=4",
        "train.max_batches_per_epoch=1",
        "device=cpu",
    ]
    if experiment.startswith("h36m"):
        overrides += [
            "data.train_subjects=[S1]",
            "data.test_subjects=[S9]",
            "data.actions=[Walking]",
        ]
    if "cpn" in experiment:  # detected 2D: the synthetic set's noisy keypoints stand in for CPN
        overrides.append("data.keypoints=detections")
    if experiment.startswith("humaneva"):
        overrides += [
            "data.train_subjects=[Train/S1]",
            "data.test_subjects=[Validate/S1]",
            "data.actions=[Walk]",
        ]
    metrics = train(_compose(overrides))
    assert metrics["mpjpe_mm"] > 0
    if experiment.startswith("3dhp"):
        assert 0 <= metrics["pck150"] <= 100 and 0 <= metrics["auc"] <= 100


@pytest.mark.parametrize(
    ("world_size", "max_batches", "expected"),
    [(1, None, 8), (1, 5, 5), (2, None, 6), (3, 5, 3), (2, 1, 0)],
)
def test_every_rank_runs_the_same_number_of_steps(world_size, max_batches, expected):
    from omegaconf import OmegaConf

    from glagcn.training import batches_per_epoch
    from trilab.distributed import DistContext

    class Windows:
        num_frames = 100

    cfg = OmegaConf.create({"batch_size": 14, "train": {"max_batches_per_epoch": max_batches}})
    ctx = DistContext(world_size=world_size, is_distributed=world_size > 1)
    assert batches_per_epoch(Windows(), cfg, ctx) == expected


def _scalars(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "scalars.jsonl").read_text().splitlines()]


def test_compiled_training_is_the_eager_computation_and_saves_plain_weights(
    synthetic, tmp_path, monkeypatch
):
    """torch.compile trains the same numbers as eager, and checkpoints hold the plain module's
    weights, loadable by lifting without the compile wrapper.  The backend is inductor's graph
    capture, decompositions and joint-graph partition without its C++ code generation (which
    takes two minutes here); inductor itself runs in the GPU check's compiled benchmark."""
    runs = {}
    for name, compiled in (("eager", "false"), ("compiled", "aot_eager_decomp_partition")):
        run = tmp_path / name
        run.mkdir()
        monkeypatch.chdir(run)
        train(_compose(_small(synthetic, "epochs=1", f"train.compile={compiled}")))
        runs[name] = run
    eager, compiled = (_scalars(runs[n]) for n in ("eager", "compiled"))
    losses = [[r["train/loss_mm"] for r in rs if "train/loss_mm" in r] for rs in (eager, compiled)]
    assert losses[0] and losses[0] == pytest.approx(losses[1], rel=1e-4)
    saved = torch.load(runs["compiled"] / "checkpoints" / "last.pt", weights_only=True)
    assert not [k for k in saved["model"] if k.startswith("_orig_mod.")]
    reference = torch.load(runs["eager"] / "checkpoints" / "last.pt", weights_only=True)
    assert saved["model"].keys() == reference["model"].keys()


@pytest.mark.parametrize("data_on_device", [True, False])
def test_training_windows_are_built_where_data_on_device_says(
    synthetic, tmp_path, monkeypatch, data_on_device
):
    import glagcn.training
    import trilab.run

    class Placed(Exception):
        pass

    def record(*args, device, **kwargs):
        raise Placed(torch.device(device))

    # The training device is "meta" (tensors without storage): the only device a CPU machine can
    # tell apart from "cpu".  Training stops where the windows are built.
    monkeypatch.setattr(glagcn.training, "WindowedPoses", record)
    monkeypatch.setattr(trilab.run, "init_distributed", _pretend_training_device("meta"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Placed) as placed:
        train(_compose(_small(synthetic, "epochs=1", f"train.data_on_device={data_on_device}")))
    assert placed.value.args[0] == torch.device("meta" if data_on_device else "cpu")


def _pretend_training_device(name: str):
    """``init_distributed`` giving a context whose training device is ``name``."""
    from trilab.distributed import init_distributed

    def fake(device):
        ctx = init_distributed("cpu")
        ctx.device = torch.device(name)
        return ctx

    return fake


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("data_on_device", [True, False])
def test_training_on_cuda_keeps_the_windows_where_asked(
    synthetic, tmp_path, monkeypatch, data_on_device
):
    import glagcn.training

    built = []

    class Recording(glagcn.training.WindowedPoses):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(glagcn.training, "WindowedPoses", Recording)
    monkeypatch.chdir(tmp_path)
    overrides = [o for o in _small(synthetic, "epochs=1") if o != "device=cpu"]
    overrides += ["device=cuda", f"train.data_on_device={data_on_device}", "train.amp=true"]
    overrides += ["tensorboard=false"]  # the GPU machine's check needs no TensorBoard
    metrics = train(_compose(overrides))
    assert np.isfinite(metrics["mpjpe_mm"])
    tables = [v for v in vars(built[0]).values() if isinstance(v, torch.Tensor)]
    assert tables and {t.device.type for t in tables} == {"cuda" if data_on_device else "cpu"}


def test_lifting_and_evaluating_import_no_training_code():
    loaded = modules_loaded_by(
        ["glagcn.lift", "glagcn.predict", "glagcn.evaluate"], ["glagcn.training", "trilab.loop"]
    )
    assert loaded == []
