"""What users' folders really hold: odd file names, huge or hostile images, spreadsheet CSVs,
and runs killed half-way. Each case: results kept, the file named, nothing lost."""

import csv
import errno
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import drag.data.images as images
import drag.predict as predict
from drag.data.formats import DataFormatError, load_ipd_partition, load_labels_splits
from drag.data.images import image_to_tensor, read_image
from drag.explain import explain
from drag.predict import predict_folder
from trilab.errors import WriteError

ODD_NAME = b"caf\xe9 \xff photo.jpg"  # Latin-1 bytes: not UTF-8, as Windows and cameras write


def _drag_checkpoint(run):
    return run / "drag" / "checkpoints" / "best.pt"


def _folder(tiny_synthetic, tmp_path, count=6):
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted((tiny_synthetic / "images").rglob("*.jpg"))[:count]:
        shutil.copy(source, folder / source.name)
    return folder


def test_a_run_killed_or_out_of_disk_while_scoring_keeps_the_previous_csv(
    trained_run, tiny_synthetic, tmp_path, monkeypatch
):
    folder = _folder(tiny_synthetic, tmp_path)
    out = tmp_path / "preds.csv"
    predict_folder(folder, _drag_checkpoint(trained_run), out, "cpu", batch_size=2)
    before = out.read_bytes()
    calls = {"n": 0}
    real_softmax = predict.F.softmax

    def dies_on_the_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # what a kill or Ctrl-C does mid-run
        return real_softmax(*args, **kwargs)

    monkeypatch.setattr(predict.F, "softmax", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(folder, _drag_checkpoint(trained_run), out, "cpu", batch_size=2)
    assert out.read_bytes() == before  # the old results are untouched
    partial = tmp_path / "preds.csv.partial"
    assert partial.is_file() and len(partial.read_text().splitlines()) == 1 + 2
    monkeypatch.undo()

    class FullDisk:  # ENOSPC as write() raises it: no file name in the error
        def __init__(self, handle):
            self.rows = 0

        def writerow(self, row):
            self.rows += 1
            if self.rows == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(predict.csv, "writer", FullDisk)
    with pytest.raises(WriteError) as refused:
        predict_folder(folder, _drag_checkpoint(trained_run), out, "cpu", batch_size=2)
    assert str(refused.value) == f"cannot write {partial}: {os.strerror(errno.ENOSPC)}"
    assert out.read_bytes() == before and not partial.exists()


def test_file_names_that_are_not_utf8_are_scored_and_drawn(trained_run, tiny_synthetic, tmp_path):
    folder = _folder(tiny_synthetic, tmp_path, count=2)
    source = next(folder.iterdir())
    shutil.copy(source, os.path.join(os.fsencode(folder), ODD_NAME))
    out = tmp_path / "preds.csv"
    summary = predict_folder(folder, _drag_checkpoint(trained_run), out, "cpu")
    assert summary["images"] == 3
    with open(out, newline="", encoding="utf-8") as handle:  # the CSV is valid UTF-8
        names = [row["path"] for row in csv.DictReader(handle)]
    assert any(name.endswith("caf\\xe9 \\xff photo.jpg") for name in names)
    results = explain(folder, _drag_checkpoint(trained_run), tmp_path / "figures", "cpu")
    assert len(results) == 3
    assert any("caf\\xe9" in result["image"] for result in results)


def test_explain_skips_what_predict_skips(trained_run, tiny_synthetic, tmp_path, monkeypatch):
    folder = _folder(tiny_synthetic, tmp_path, count=2)
    bomb = folder / "bomb.png"
    Image.new("RGB", (80, 80)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 80 x 80 > 2 x limit: PIL refuses
    (folder / "chunk.png").write_bytes(_png_with_huge_text_chunk())
    out = tmp_path / "figures"
    results = explain(folder, _drag_checkpoint(trained_run), out, "cpu")
    unreadable = (out / "unreadable.tsv").read_text()
    assert "bomb.png\tDecompressionBombError" in unreadable
    assert "chunk.png\tValueError" in unreadable
    # the 64 px photos (4096 px) pass the lowered limit: they are drawn
    assert sorted(os.path.basename(r["image"]) for r in results) == sorted(
        p.name for p in folder.glob("*.jpg")
    )
    summary = predict_folder(folder, _drag_checkpoint(trained_run), tmp_path / "p.csv", "cpu")
    assert summary["unreadable"] == 2


def _png_with_huge_text_chunk() -> bytes:
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = buffer.getvalue()
    text = b"Comment\x00\x00" + zlib.compress(b"x" * (64 * 2**20))  # zTXt over PIL's limit
    chunk = struct.pack(">I", len(text)) + b"zTXt" + text
    chunk += struct.pack(">I", zlib.crc32(b"zTXt" + text) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]  # after the 8-byte signature + 25-byte IHDR


def test_large_images_are_decoded_at_reduced_size_and_huge_ones_skipped(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(150, 200, 3), dtype=np.uint8)
    large = Image.fromarray(pixels).resize((2000, 1500), Image.BICUBIC)
    large.save(tmp_path / "large.png")
    reduced = read_image(tmp_path / "large.png", model_side=64)
    assert reduced.size == (2000 // 5, 1500 // 5)  # 1500 // (4 * 64) = 5
    full = image_to_tensor(read_image(tmp_path / "large.png"), 64)
    assert float((image_to_tensor(reduced, 64) - full).abs().mean()) < 0.02
    monkeypatch.setattr(images, "MAX_FULL_DECODE_PIXELS", 1_000_000)
    with pytest.raises(images.ImageTooLargeError, match="2000 x 1500 pixels"):
        read_image(tmp_path / "large.png", model_side=64)
    large.save(tmp_path / "large.jpg", quality=95)  # JPEGs are decoded at reduced scale
    # drafted at 1/2 (1000 x 750), then halved again: still at least 4 x 64 on the short side
    assert read_image(tmp_path / "large.jpg", model_side=64).size == (500, 375)


def test_a_split_csv_saved_by_a_spreadsheet_with_a_byte_order_mark_is_read(tmp_path):
    folder = tmp_path / "partition0"
    folder.mkdir()
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_text(
            "img_name,label\na.jpg,private\n", encoding="utf-8-sig"
        )
    splits = load_ipd_partition(tmp_path, 0, tmp_path / "images")
    assert [s.label for s in splits["train"]] == [1]


def test_palette_and_16_bit_images_are_reduced_before_any_full_size_conversion(
    tmp_path, monkeypatch
):
    # A 64 MP palette PNG with transparency (a 20 KB file) took 1 GB converted to RGBA and
    # composited at full size; a 16-bit one 1.1 GB: the reduction has to come first.
    codes = (np.arange(600 * 600).reshape(600, 600) % 7).astype(np.uint8)
    Image.fromarray(codes, mode="P").save(tmp_path / "palette.png", transparency=0)
    depth = (np.arange(600 * 600, dtype=np.uint16).reshape(600, 600) % 4000) + 1000
    Image.fromarray(depth).save(tmp_path / "deep.png")
    converted = []
    real_to_rgb = images.to_rgb

    def spy(image):
        converted.append(image.size)
        return real_to_rgb(image)

    monkeypatch.setattr(images, "to_rgb", spy)
    for name in ("palette.png", "deep.png"):
        photo = read_image(tmp_path / name, model_side=64)  # 600 // (4 * 64) = 2
        assert photo.mode == "RGB" and photo.size == (300, 300)
    assert converted == [(300, 300), (300, 300)]


def test_16_bit_images_are_scaled_to_8_bits_in_a_few_bytes_per_pixel():
    import tracemalloc

    depth = (np.arange(1000 * 1000, dtype=np.uint16).reshape(1000, 1000) % 4000) + 1000
    image = Image.fromarray(depth)
    assert image.mode == "I;16"
    tracemalloc.start()
    try:
        rgb = images.to_rgb(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * depth.size  # float64 temporaries took 17 bytes per pixel
    values = np.asarray(rgb)
    assert values.min() == 0 and values.max() == 255


def _split_readers(tmp_path, name: bytes):
    """Both split-file readers, each over a file whose one row has image name ``name``."""
    folder = tmp_path / "partition0"
    folder.mkdir()
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_bytes(b"img_name,label\n" + name + b",private\n")
    (tmp_path / "labels.csv").write_bytes(b"image,label,fold\n" + name + b",1,0\n")
    labels = {"1": "private", "0": "public"}
    return [
        lambda: load_ipd_partition(tmp_path, 0, tmp_path),
        lambda: load_labels_splits(
            tmp_path / "labels.csv", tmp_path, "fold", labels, "image", "label"
        ),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # a spreadsheet's plain "CSV" on Windows is cp1252: this was a UnicodeDecodeError
        ("caf\u00e9.jpg".encode("cp1252"), r"\.csv line 2: byte 0xe9 is not UTF-8"),
        (b"", r"\.csv line 2: no image name in column"),  # was a TypeError from Path(None)
        (b"a" * 200_000, r"\.csv near line 2: not readable as CSV"),  # was a bare csv.Error
    ],
)
def test_split_csvs_that_are_not_utf8_or_not_csv_name_the_file_and_line(tmp_path, name, expected):
    for read in _split_readers(tmp_path, name):
        with pytest.raises(DataFormatError, match=expected):
            read()
