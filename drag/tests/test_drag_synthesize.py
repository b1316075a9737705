import csv

import pytest

from drag.data.formats import load_folder_tree, load_ipd_partition, load_labels_splits
from drag.data.synthesize import main, synthesize
from trilab.testing import exit_of_entry_point


def test_same_seed_same_images_and_all_three_formats_agree(tiny_synthetic, tmp_path):
    again = synthesize(
        tmp_path / "again", n=40, size=64, seed=3, private_fraction=0.4, progress=False
    )
    first = sorted((tiny_synthetic / "images").rglob("*.jpg"))
    assert len(first) == 40
    for path in first[:5]:
        twin = again / path.relative_to(tiny_synthetic)
        assert twin.read_bytes() == path.read_bytes()
    ipd = load_ipd_partition(tiny_synthetic, 1, tiny_synthetic / "images")
    curated = load_labels_splits(
        tiny_synthetic / "labels_splits.csv",
        tiny_synthetic / "images",
        "0",
        {0: "private", 1: "public"},
    )
    for split in ("train", "val", "test"):
        assert sorted(ipd[split], key=lambda s: s.path) == sorted(
            curated[split], key=lambda s: s.path
        )
    for sample in ipd["train"]:
        assert ("private" in sample.path) == (sample.label == 1)
    assert sum(s.label for v in ipd.values() for s in v) == 16
    tree = load_folder_tree(tiny_synthetic / "images", {"train": 0.5, "val": 0.25, "test": 0.25}, 0)
    assert sum(len(v) for v in tree.values()) == 40


def test_cli_writes_partitions(tmp_path):
    main(["--out", str(tmp_path / "cli"), "--n", "8", "--size", "48", "--partitions", "2"])
    for k in (1, 2):
        rows = list(csv.DictReader(open(tmp_path / "cli" / f"partition{k}" / "test.csv")))
        assert rows and set(rows[0]) == {"img_name", "label"}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--n", "0", "--n must be at least 1 (images), got 0"),
        ("--size", "24", "--size must be at least 32 (pixels), got 24"),
        ("--partitions", "0", "--partitions must be at least 1, got 0"),
        ("--private-fraction", "1", "--private-fraction must be between 0 and 1"),
        ("--private-fraction", "-0.5", "--private-fraction must be between 0 and 1"),
    ],
)
def test_cli_refuses_a_bad_setting_before_writing(option, value, message, tmp_path):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--n", "4", option, value]
    status, stderr = exit_of_entry_point(lambda: main(args), "unused")
    assert status == 2 and stderr.strip().startswith("python -m drag.data.synthesize: error: ")
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_image_cv2_could_not_write_is_an_error_naming_it(tmp_path, monkeypatch):
    # cv2.imwrite answers a full disk or a refused file with False, not an exception
    import cv2

    monkeypatch.setattr(cv2, "imwrite", lambda *args, **kwargs: False)
    out = tmp_path / "full"
    status, stderr = exit_of_entry_point(
        lambda: main(["--out", str(out), "--n", "3", "--size", "32"]), "unused"
    )
    assert status == 2 and "cannot write image" in stderr
    assert str(out / "images" / "private") in stderr
