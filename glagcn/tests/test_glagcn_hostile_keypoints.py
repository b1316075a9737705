"""Malformed and hostile keypoint files: one line naming the file and value, never a
traceback, never poses made from garbage, never an allocation sized by a stray number."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glagcn.keypoints import KeypointInputError, load_track, read_detections
from glagcn.lift import lift, lift_track

PROJECT = Path(__file__).resolve().parents[1]


def _coco_entries(frames=6, x=300.0):
    rng = np.random.default_rng(0)
    entries = []
    for frame in range(frames):
        points = np.concatenate([rng.uniform(x, x + 200, (17, 2)), np.ones((17, 1))], axis=1)
        entries.append(
            {
                "image_id": frame,
                "category_id": 1,
                "score": 0.9,
                "keypoints": points.round(2).ravel().tolist(),
            }
        )
    return entries


def _write(path, content):
    path.write_text(json.dumps(content))
    return path


@pytest.fixture(scope="module")
def checkpoint(tiny_lifter_checkpoint):
    return tiny_lifter_checkpoint


def test_deeply_nested_json_is_refused(tmp_path):
    path = tmp_path / "nested.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(KeypointInputError, match="nested.json: JSON nested too deeply"):
        read_detections(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda e: e[2].update(keypoints=["12.5"] * 51), r"entry 2 'keypoints' holds <U"),
        (lambda e: e[1].update(keypoints=[True] * 51), "entry 1 'keypoints' holds bool"),
        (lambda e: e[3].update(keypoints=[1.0] * 50 + [{"x": 1}]), "entry 3"),
    ],
)
def test_wrong_types_in_coco_json_name_the_entry(tmp_path, change, expected):
    entries = _coco_entries()
    change(entries)
    with pytest.raises(KeypointInputError, match=expected):
        read_detections(_write(tmp_path / "bad.json", entries))


def test_a_stray_frame_number_is_named_and_allocates_nothing(tmp_path):
    entries = _coco_entries()
    entries[4]["image_id"] = 10**15  # a timestamp where a frame number belongs
    with pytest.raises(KeypointInputError, match=r"frame number 1000000000000000 is "):
        load_track(_write(tmp_path / "stray.json", entries))


def test_coordinates_no_image_can_have_are_refused(tmp_path, checkpoint):
    entries = _coco_entries()
    entries[2]["keypoints"][0] = 1e30
    with pytest.raises(KeypointInputError, match=r"frame 2, person 0, joint 0: x = 1e\+30 px"):
        read_detections(_write(tmp_path / "huge.json", entries))
    entries = _coco_entries(x=-1e6)
    with pytest.raises(KeypointInputError, match=r"x = -99\d+ px is outside any image"):
        read_detections(_write(tmp_path / "negative.json", entries))
    # within the bounds any image could have, but far outside the stated one
    sequence, _, _ = load_track(_write(tmp_path / "far.json", _coco_entries(x=50_000)))
    with pytest.raises(KeypointInputError, match=r"far outside the 1000x1000 image"):
        lift_track(sequence, (1000, 1000), checkpoint)
    for size in ((1e12, 1000), (float("nan"), 1000), (0, 1000)):
        with pytest.raises(KeypointInputError, match="image width"):
            lift_track(sequence, size, checkpoint)


def test_booleans_or_complex_numbers_in_an_npz_are_refused(tmp_path):
    keypoints = np.ones((5, 17, 2), dtype=bool)
    np.savez(tmp_path / "bool.npz", keypoints=keypoints)
    with pytest.raises(KeypointInputError, match="key 'keypoints' holds bool values"):
        read_detections(tmp_path / "bool.npz")
    np.savez(tmp_path / "complex.npz", keypoints=np.ones((5, 17, 2), dtype=complex))
    with pytest.raises(KeypointInputError, match="holds complex128 values"):
        read_detections(tmp_path / "complex.npz")


def test_wrong_types_in_videopose3d_metadata_are_one_line(tmp_path):
    positions = {"clip.mp4": {"custom": [np.ones((5, 17, 2), dtype=np.float32) * 100]}}
    for metadata in (
        {"layout_name": ["coco"], "num_joints": 17},
        {"layout_name": "coco", "num_joints": "seventeen"},
        {
            "layout_name": "coco",
            "num_joints": 17,
            "video_metadata": {"clip.mp4": {"w": float("nan"), "h": 10}},
        },
        ["not", "a", "dict"],
    ):
        path = tmp_path / "data_2d_custom_clip.npz"
        np.savez(
            path,
            positions_2d=np.array(positions, dtype=object),
            metadata=np.array(metadata, dtype=object),
        )
        with pytest.raises(KeypointInputError, match="data_2d_custom_clip.npz"):
            read_detections(path)


def test_non_numeric_openpose_values_are_one_line(tmp_path):
    folder = tmp_path / "openpose"
    folder.mkdir()
    person = {"pose_keypoints_2d": ["a"] * 75}
    (folder / "clip_000000000000_keypoints.json").write_text(
        json.dumps({"version": 1.3, "people": [person]})
    )
    with pytest.raises(KeypointInputError, match="openpose"):
        read_detections(folder)


def test_predict_py_prints_one_line_and_exits_2(tmp_path, checkpoint):
    entries = _coco_entries()
    entries[0]["keypoints"][3] = 1e30  # x of joint 1
    path = _write(tmp_path / "huge.json", entries)
    done = subprocess.run(
        [
            sys.executable,
            "predict.py",
            f"input={path}",
            f"checkpoint={checkpoint}",
            f"output={tmp_path / 'out'}",
            "image_width=1000",
            "image_height=1000",
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "huge.json" in done.stderr
    assert not (tmp_path / "out" / "poses_3d.json").exists()


def _predict_config(tmp_path, checkpoint, **overrides):
    """predict.py's configuration for a small COCO file, without rendering."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(PROJECT / "configs" / "predict.yaml")
    cfg.pop("hydra")
    settings = {
        "input": str(_write(tmp_path / "k.json", _coco_entries())),
        "checkpoint": str(checkpoint),
        "output": str(tmp_path / "out"),
        "image_width": 1000,
        "image_height": 1000,
        "render": False,
        "progress": False,
    }
    return OmegaConf.merge(cfg, {**settings, **overrides})


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("fps", float("nan"), "fps must be a finite number in .*got nan"),
        ("fps", "thirty", "fps must be a number, got 'thirty'"),
        ("link_iou", "high", "link_iou must be a number, got 'high'"),
        ("max_missing_fraction", float("nan"), "max_missing_fraction must be a finite"),
        ("max_gap_frames", -1, "max_gap_frames must be an integer >= 0, got -1"),
        ("person", 1.5, "person must be an integer, got 1.5"),
    ],
)
def test_predict_options_that_are_not_numbers_are_named_before_anything_is_read(
    tmp_path, checkpoint, option, value, expected
):
    # a NaN frame rate went into poses_3d.json as a NaN literal; a word was a ValueError
    from glagcn.predict import predict
    from trilab.errors import UserError

    with pytest.raises(UserError, match=expected):
        predict(_predict_config(tmp_path, checkpoint, **{option: value}))
    assert not (tmp_path / "out" / "poses_3d.json").exists()


def test_a_full_disk_while_writing_poses_names_the_file_and_keeps_the_previous_one(
    tmp_path, checkpoint, monkeypatch
):
    import errno

    import glagcn.predict as predict_module
    from trilab.errors import WriteError

    out = tmp_path / "out"
    out.mkdir()
    (out / "poses_3d.npz").write_bytes(b"the previous run's poses")
    write_npz = predict_module.np.savez

    def full_disk(handle, **arrays):
        write_npz(handle, **arrays)  # the bytes went out, then the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no name

    monkeypatch.setattr(predict_module.np, "savez", full_disk)
    with pytest.raises(WriteError, match=f"cannot write {out}/poses_3d.npz: No space left"):
        predict_module.predict(_predict_config(tmp_path, checkpoint))
    assert (out / "poses_3d.npz").read_bytes() == b"the previous run's poses"
    assert sorted(p.name for p in out.iterdir()) == ["poses_3d.npz"]  # no temporary left


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (np.array([np.nan, 100.0]), "key 'image_size': image width nan is not a size"),
        (np.array(["wide", "tall"]), r"key 'image_size': .* got \['wide', 'tall'\]"),
    ],
)
def test_an_impossible_image_size_in_an_npz_names_the_key_and_value(tmp_path, size, expected):
    keypoints = np.full((5, 17, 2), 100.0, dtype=np.float32)
    np.savez(tmp_path / "sized.npz", keypoints=keypoints, image_size=size)
    with pytest.raises(KeypointInputError, match=expected):
        read_detections(tmp_path / "sized.npz")


def test_json_saved_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.json"
    path.write_text(json.dumps(_coco_entries()), encoding="utf-8-sig")
    assert len(read_detections(path).frames) == 6


def test_arrays_handed_to_lift_are_refused_for_their_dtype_before_their_shape(checkpoint):
    pixels = np.random.default_rng(0).uniform(300, 500, (10, 17, 3))
    with_none = pixels[..., :2].astype(object)
    with_none[2, 3, 0] = None  # became NaN without a word, booleans 0/1 pixels, complex real
    wrong = (pixels.astype(object), with_none, pixels[..., :2] > 400, pixels[..., :2] + 0j)
    for array in wrong:
        with pytest.raises(KeypointInputError, match=f"keypoints_2d holds {array.dtype} values"):
            lift(array, (1000, 1000), checkpoint)
