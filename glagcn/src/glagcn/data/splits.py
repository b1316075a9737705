"""Train/val/test splits from the ``data`` config group: files, subjects, skeleton."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from glagcn.data.sequences import DataError, PoseSequence
from glagcn.skeleton import H36M_17, HUMANEVA_15, MPI_INF_3DHP_17, Skeleton


@dataclass
class Splits:
    skeleton: Skeleton
    train: list[PoseSequence]
    val: list[PoseSequence]
    test: list[PoseSequence]
    notes: list[str] = field(default_factory=list)  # what the loaders left out, for the log


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{what} not found: {path} (set data.root to the folder holding it)")
    return path


def ensure_synthetic(root: Path, seed: int = 0) -> None:
    """Write the synthetic set into ``root`` when it holds none, or one written by an older
    version of the generator (the default data of the demo).  A folder is never rewritten for
    any other reason: it may have been made on purpose with other settings."""
    import json

    from glagcn.data.synthesize import FORMAT_VERSION, STAMP_FILE, synthesize

    if (root / "data_3d_h36m.npz").is_file():
        stamp = root / STAMP_FILE
        if stamp.is_file():
            try:
                version = json.loads(stamp.read_text()).get("format_version")
            except (OSError, ValueError, AttributeError):
                version = None
            if version == FORMAT_VERSION:
                return
        elif not (root / "demo_keypoints.json").is_file():
            return  # not made by the generator (it always writes demo_keypoints.json)
    synthesize(root, seed=seed)


def _subject_splits(
    loader, path_3d: Path, path_2d: Path, actions, data: DictConfig, skeleton: Skeleton, **options
) -> Splits:
    """Train/val/test by subject lists, for the datasets stored as a 3D + 2D file pair."""
    notes: list[str] = []

    def load(subjects, downsample):
        if not subjects:
            return []
        extra = dict(options, notes=notes) if options else {}
        return loader(
            path_3d, path_2d, list(subjects), actions=actions, downsample=downsample, **extra
        )

    return Splits(
        skeleton,
        load(data.train_subjects, int(data.downsample)),
        load(data.val_subjects, 1),
        load(data.test_subjects, 1),
        notes,
    )


def load_splits(data: DictConfig) -> Splits:
    root = Path(str(data.root)).expanduser()
    if data.get("generate_if_missing", False):
        ensure_synthetic(root, int(data.get("synthetic_seed", 0)))
    actions = list(data.actions) if data.get("actions") else None
    if data.dataset == "h36m":
        from glagcn.data.h36m import load_h36m

        path_3d = _require(root / "data_3d_h36m.npz", "Human3.6M 3D file")
        path_2d = _require(
            root / f"data_2d_h36m_{data.keypoints}.npz",
            f"Human3.6M 2D file for keypoints={data.keypoints}",
        )
        return _subject_splits(
            load_h36m,
            path_3d,
            path_2d,
            actions,
            data,
            H36M_17,
            skip_corrupt_take=bool(data.get("skip_corrupt_take", True)),
        )
    if data.dataset == "humaneva":
        from glagcn.data.humaneva import load_humaneva

        path_3d = _require(root / "data_3d_humaneva15.npz", "HumanEva-I 3D file")
        path_2d = _require(
            root / f"data_2d_humaneva15_{data.keypoints}.npz",
            f"HumanEva-I 2D file for keypoints={data.keypoints}",
        )
        return _subject_splits(load_humaneva, path_3d, path_2d, actions, data, HUMANEVA_15)
    if data.dataset == "3dhp":
        from glagcn.data.mpi3dhp import load_3dhp

        train = load_3dhp(
            _require(root / "data_train_3dhp.npz", "MPI-INF-3DHP train file"),
            "train",
            downsample=int(data.downsample),
        )
        test = load_3dhp(_require(root / "data_test_3dhp.npz", "MPI-INF-3DHP test file"), "test")
        return Splits(MPI_INF_3DHP_17, train, [], test)
    raise DataError(f"unknown data.dataset {data.dataset!r}: expected h36m, humaneva or 3dhp")
