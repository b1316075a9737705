import csv

import numpy as np
import pytest
from PIL import Image

from drag.data import balanced_weights, build_splits, make_loader
from drag.data.dataset import Sample
from drag.data.formats import (
    DataFormatError,
    load_folder_tree,
    load_ipd_partition,
    load_labels_splits,
)
from drag.data.images import BadFileReport, read_image, to_rgb
from trilab.loop import epoch_order
from trilab.testing import RecordingLogger


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def make_images(root, names, size=(20, 16)):
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (i * 20 % 255, 100, 50)).save(path)


def test_ipd_partition_format(tmp_path):
    make_images(tmp_path / "img", ["a.jpg", "b.jpg", "c.jpg", "d.png"])
    part = tmp_path / "splits" / "partition2"
    write_csv(
        part / "train.csv", ["img_name", "label"], [["a.jpg", "private"], ["b.jpg", "public"]]
    )
    write_csv(part / "val.csv", ["img_name", "label"], [["c.jpg", " Private "]])
    write_csv(
        part / "test.csv", ["img_name", "label"], [[str(tmp_path / "img" / "d.png"), "public"]]
    )
    splits = load_ipd_partition(tmp_path / "splits", 2, tmp_path / "img")
    assert [s.label for s in splits["train"]] == [1, 0]
    assert splits["val"][0] == Sample(str(tmp_path / "img" / "c.jpg"), 1)
    assert splits["test"][0].path == str(tmp_path / "img" / "d.png")
    write_csv(part / "val.csv", ["img_name", "label"], [["c.jpg", "secret"]])
    with pytest.raises(DataFormatError, match=r"val.csv line 2.*'secret'"):
        load_ipd_partition(tmp_path / "splits", 2, tmp_path / "img")
    with pytest.raises(FileNotFoundError, match="partition3"):
        load_ipd_partition(tmp_path / "splits", 3, tmp_path / "img")


@pytest.mark.parametrize(
    "label_map,raw_private",
    [({0: "private", 1: "public"}, "0"), ({0: "public", 1: "private"}, "1")],
)
def test_labels_splits_format_maps_labels_explicitly(tmp_path, label_map, raw_private):
    raw_public = "1" if raw_private == "0" else "0"
    rows = [
        ["x1.jpg", raw_private, "0", "2"],
        ["x2.jpg", raw_public, "1", "0"],
        ["x3.jpg", raw_public, "2", "1"],
        ["x4.jpg", raw_private, "0", "0"],
    ]
    write_csv(tmp_path / "labels_splits.csv", ["Image Name", "Label 2-class", "0", "1"], rows)
    splits = load_labels_splits(tmp_path / "labels_splits.csv", tmp_path, "0", label_map)
    assert [(s.path[-6:], s.label) for s in splits["train"]] == [("x1.jpg", 1), ("x4.jpg", 1)]
    assert [s.label for s in splits["val"]] == [0] and [s.label for s in splits["test"]] == [0]
    other = load_labels_splits(tmp_path / "labels_splits.csv", tmp_path, "1", label_map)
    assert [s.path[-6:] for s in other["test"]] == ["x1.jpg"]
    with pytest.raises(DataFormatError, match="missing column"):
        load_labels_splits(tmp_path / "labels_splits.csv", tmp_path, "fold9", label_map)
    with pytest.raises(DataFormatError, match="both private and public"):
        load_labels_splits(tmp_path / "labels_splits.csv", tmp_path, "0", {0: "private"})


def test_folder_tree_split_is_stratified_and_seeded(tmp_path):
    make_images(tmp_path, [f"private/sub/p{i}.jpg" for i in range(10)])
    make_images(tmp_path, [f"public/q{i}.png" for i in range(20)])
    (tmp_path / "public" / "notes.txt").write_text("not an image")
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    splits = load_folder_tree(tmp_path, fractions, seed=1)
    counts = {k: (sum(s.label for s in v), sum(1 - s.label for s in v)) for k, v in splits.items()}
    assert counts == {"train": (6, 12), "val": (2, 4), "test": (2, 4)}
    everything = sorted(s.path for v in splits.values() for s in v)
    assert len(everything) == len(set(everything)) == 30
    assert load_folder_tree(tmp_path, fractions, seed=1) == splits
    assert load_folder_tree(tmp_path, fractions, seed=2) != splits


def test_bad_files_are_skipped_and_reported(tmp_path):
    make_images(tmp_path, ["private/ok.jpg", "public/ok2.jpg", "public/ok3.jpg"], size=(64, 64))
    (tmp_path / "public" / "text.jpg").write_text("definitely not a jpeg")
    good = (tmp_path / "private" / "ok.jpg").read_bytes()
    (tmp_path / "private" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    part = tmp_path / "partition1"
    rows = [
        ["private/ok.jpg", "private"],
        ["public/text.jpg", "public"],
        ["private/gone.jpg", "private"],
        ["private/truncated.jpg", "private"],
        ["public/ok2.jpg", "public"],
    ]
    write_csv(part / "train.csv", ["img_name", "label"], rows)
    write_csv(part / "val.csv", ["img_name", "label"], [["public/ok3.jpg", "public"]])
    write_csv(part / "test.csv", ["img_name", "label"], [["public/ok3.jpg", "public"]])
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "format": "ipd",
            "partitions_dir": str(tmp_path),
            "partition": 1,
            "image_root": str(tmp_path),
            "image_size": 32,
            "batch_size": 2,
        }
    )
    report, log = BadFileReport(), RecordingLogger()
    splits = build_splits(cfg, 0, log, report)
    assert any("private -> 1" in line or "'private' -> 1" in line for line in log.lines)
    assert len(splits["train"]) == 2  # missing, non-image and truncated dropped up front
    assert len(report) == 3
    # without the up-front check, the bad files fail at decode time inside the epoch: skipped
    cfg.check_files = False
    unchecked = build_splits(cfg, 0, log, BadFileReport())
    assert len(unchecked["train"]) == 5
    seen, failed = 0, []
    for batch in make_loader(unchecked["train"], cfg):
        failed += batch["failed"]
        seen += len(batch["labels"])
    assert seen == 2 and len(failed) == 3
    reasons = " ".join(report.entries.values())
    assert "missing" in reasons and "not an image" in reasons
    path = report.write(tmp_path / "skipped.tsv")
    assert "truncated.jpg" in path.read_text()
    with pytest.warns(UserWarning, match="3 unreadable"):
        report.warn()


def test_modes_converted_to_rgb():
    for mode in ("L", "P", "CMYK", "RGBA", "LA", "I;16"):
        image = Image.new(mode if mode != "I;16" else "I;16", (4, 4))
        assert to_rgb(image).mode == "RGB", mode
    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert np.asarray(to_rgb(rgba)).min() == 255  # transparent pixels land on white


def test_cmyk_and_grayscale_files_load(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("L", (8, 6), 128).save(tmp_path / "gray.png")
    assert read_image(tmp_path / "cmyk.jpg").mode == "RGB"
    assert read_image(tmp_path / "gray.png").size == (8, 6)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "rotated.jpg").size == (20, 40)


def test_balanced_sampling_draws_classes_evenly():
    from omegaconf import OmegaConf

    samples = [Sample(f"p{i}", 1) for i in range(10)] + [Sample(f"q{i}", 0) for i in range(90)]
    cfg = OmegaConf.create({"image_size": 8, "batch_size": 4})
    order = epoch_order(len(samples), 0, 0, weights=balanced_weights(samples))
    loader = make_loader(samples, cfg, order=order)
    labels = [samples[i].label for i in loader.sampler]
    assert 0.35 < np.mean(labels) < 0.65
