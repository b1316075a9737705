import csv

from drag.data.formats import load_folder_tree, load_ipd_partition, load_labels_splits
from drag.data.synthesize import main, synthesize


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
