"""predict.py / explain.py refuse what they should: wrong stage, no images; thresholds said."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from drag.checkpoint_stage import stage_of
from drag.errors import NoImagesError, UserError, WrongStageError
from drag.explain import display_photo, explain, figure_path, region_figure
from drag.predict import predict_folder
from trilab.atomic import atomic_save
from trilab.checkpoint import read_checkpoint
from trilab.testing import RecordingLogger


def ckpt(run, stage, name="best.pt"):
    return run / stage / "checkpoints" / name


def test_every_checkpoint_records_its_stage_and_validated_ones_their_threshold(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for stage in ("finetune_backbone", "pretrain_cgl", "drag"):
        for name in ("best.pt", "last.pt"):
            extra = read_checkpoint(ckpt(trained_run, stage, name))["extra"]
            assert extra["stage"] == stage
            assert ("threshold" in extra) == (stage != "pretrain_cgl"), (stage, name)
    # best.pt carries the threshold the final evaluation reports
    for stage, key in (("finetune_backbone", "baseline"), ("drag", "drag")):
        stored = read_checkpoint(ckpt(trained_run, stage))["extra"]["threshold"]
        assert stored == pytest.approx(metrics[key]["threshold"])


def test_predict_and_explain_refuse_other_stages_naming_the_right_file(
    trained_run, tiny_synthetic, tmp_path
):
    images = tiny_synthetic / "images" / "private"
    right = str(ckpt(trained_run, "drag"))
    with pytest.raises(WrongStageError, match="CGL-pretraining") as refused:
        predict_folder(images, ckpt(trained_run, "pretrain_cgl"), tmp_path / "p.csv", "cpu")
    assert right in str(refused.value) and isinstance(refused.value, UserError)
    assert not (tmp_path / "p.csv").exists()
    for stage in ("pretrain_cgl", "finetune_backbone"):
        with pytest.raises(WrongStageError, match="explain.py needs a finished DRAG") as refused:
            explain(images, ckpt(trained_run, stage), tmp_path / "x", device="cpu")
        assert right in str(refused.value)
    # the backbone alone is a valid classifier for predict.py (the baseline)
    log = RecordingLogger()
    backbone = ckpt(trained_run, "finetune_backbone")
    summary = predict_folder(images, backbone, tmp_path / "b.csv", "cpu", log=log)
    assert summary["images"] == 16
    stored = read_checkpoint(backbone)["extra"]["threshold"]
    assert summary["threshold"] == pytest.approx(stored)
    assert "chosen on the validation split" in log.text()


def _without(payload, *keys):
    payload = dict(payload)
    payload["extra"] = {k: v for k, v in payload["extra"].items() if k not in keys}
    return payload


def test_threshold_origin_is_logged_and_0_5_explained(trained_run, tiny_synthetic, tmp_path):
    images = tiny_synthetic / "images" / "public"
    log = RecordingLogger()
    predict_folder(images, ckpt(trained_run, "drag"), tmp_path / "a.csv", "cpu", log=log)
    assert log.records[0][0] == "info" and log.records[0][1].startswith("decision threshold")
    assert "chosen on the validation split" in log.text()
    # a backbone checkpoint with no threshold -> loads, 0.5, said why
    old = tmp_path / "unvalidated_backbone.pt"
    atomic_save(
        _without(read_checkpoint(ckpt(trained_run, "finetune_backbone")), "threshold"),
        old,
    )
    log = RecordingLogger()
    summary = predict_folder(images, old, tmp_path / "b.csv", "cpu", log=log)
    assert summary["threshold"] == 0.5
    warnings = [msg for level, msg in log.records if level == "warning"]
    assert any("0.500" in m and str(old) in m and "never validated" in m for m in warnings)
    log = RecordingLogger()
    summary = predict_folder(images, old, tmp_path / "c.csv", "cpu", threshold=0.3, log=log)
    assert summary["threshold"] == 0.3 and "given on the command line" in log.text()


def test_a_checkpoint_without_a_stage_is_not_called_a_drag_stage():
    glagcn = {
        "extra": {"model_config": {"channels": 96}, "skeleton": "h36m17"},
        "optimizer": {"param_groups": [{}]},
    }
    with pytest.raises(WrongStageError, match="x.pt is a GLA-GCN checkpoint"):
        stage_of(glagcn, "x.pt")
    with pytest.raises(WrongStageError, match="records no stage"):
        stage_of({"extra": {"model_config": {"groups": 4}, "threshold": 0.4}}, "x.pt")
    with pytest.raises(WrongStageError, match="unknown stage 'cluster'"):
        stage_of({"extra": {"stage": "cluster"}}, "x.pt")


def test_empty_folder_or_no_images_is_an_error(trained_run, tmp_path):
    drag_ckpt = ckpt(trained_run, "drag")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoImagesError, match="no image files under .*empty"):
        predict_folder(empty, drag_ckpt, tmp_path / "e.csv", "cpu")
    with pytest.raises(NoImagesError, match="no image files"):
        explain(empty, drag_ckpt, tmp_path / "x", device="cpu")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no pictures here")
    with pytest.raises(NoImagesError, match="no image files under .*notes"):
        predict_folder(notes, drag_ckpt, tmp_path / "n.csv", "cpu")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(NoImagesError, match="none of the 1 image file"):
        predict_folder(broken, drag_ckpt, tmp_path / "b.csv", "cpu")
    assert isinstance(NoImagesError("x"), UserError)


def test_explain_names_figures_by_relative_path_and_says_what_it_dropped(
    trained_run, tiny_synthetic, tmp_path
):
    source = next((tiny_synthetic / "images" / "private").glob("*.jpg"))
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.open(source).save(folder / "a.png")
    Image.open(source).save(folder / "a.gif")
    shutil.copy(source, folder / "sub" / "a.png")
    shutil.copy(source, folder / "z.png")  # sorts last: the one max_images leaves out
    out = tmp_path / "figures"
    log = RecordingLogger()
    figures = explain(folder, ckpt(trained_run, "drag"), out, device="cpu", max_images=3, log=log)
    pngs = sorted(f["png"] for f in figures)
    assert pngs == [
        str(out / "a.gif.regions.png"),
        str(out / "a.png.regions.png"),
        str(out / "sub" / "a.png.regions.png"),
    ]
    assert all(out.joinpath(p).is_file() for p in pngs)
    assert "4 images found" in log.text() and "1 not drawn" in log.text()
    assert figure_path(folder / "a.gif", folder / "a.gif", out) == out / "a.gif.regions.png"


def test_region_heatmaps_share_one_scale_with_colour_bar_at_the_photo_aspect():
    photo = display_photo(Image.new("RGB", (40, 20), (200, 10, 10)))
    assert photo.shape[1] == 2 * photo.shape[0]  # 2:1 as the original, not squared
    flat = np.full((2, 2), 1.0) + np.array([[0, 1e-4], [0, 0]])  # what a featureless image gives
    peaked = np.array([[0.0, 3.0], [0.0, 0.0]])
    maps = np.stack([flat, peaked, flat * 0.5])
    adjacency = np.array([[0.5, -0.2, 0.1], [0.3, 0.0, -0.4], [1.0, 0.2, 0.2]])
    fig = region_figure(photo, maps, adjacency, "t", 0.7)
    heatmaps = [ax.images[1] for ax in fig.axes if len(ax.images) == 2]
    assert len(heatmaps) == 3
    assert len({im.get_clim() for im in heatmaps}) == 1  # one shared colour scale
    vmin, vmax = heatmaps[0].get_clim()
    assert vmin == 0.0 and vmax == pytest.approx(3.0, rel=0.05)
    for im in heatmaps:
        assert im.get_array().shape == photo.shape[:2]
    flat_span = np.ptp(heatmaps[0].get_array()) / (vmax - vmin)
    assert flat_span < 1e-3  # a flat map stays flat instead of being stretched to full range
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any("shared scale" in label for label in labels)  # the colour bar of the regions
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_converted_or_unvalidated_checkpoint_says_why_0_5(trained_run, tmp_path):
    payload = read_checkpoint(ckpt(trained_run, "drag"))
    payload = _without(payload, "threshold")
    payload["extra"]["source"] = "authors_notebooks"
    path = tmp_path / "converted.pt"
    atomic_save(payload, path)
    from drag.inference import decision_threshold, load_trained

    _, info = load_trained(path, torch.device("cpu"), ("drag",), "test")
    log = RecordingLogger()
    assert decision_threshold(info, None, log) == 0.5
    assert "authors' notebook weights" in log.records[0][1] and log.records[0][0] == "warning"


def test_a_full_disk_while_drawing_stops_naming_the_figure(
    trained_run, tiny_synthetic, tmp_path, monkeypatch
):
    import errno

    from matplotlib.figure import Figure

    from trilab.errors import WriteError

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no name

    monkeypatch.setattr(Figure, "savefig", full_disk)
    photos = tiny_synthetic / "images" / "private"
    out = tmp_path / "figures"
    with pytest.raises(WriteError, match=rf"cannot write {out}/.*regions\.png: No space left"):
        explain(photos, ckpt(trained_run, "drag"), out, device="cpu", max_images=1)
