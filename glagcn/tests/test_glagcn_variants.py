import json
from pathlib import Path

import pytest

from trilab.bench import load_script

variants = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "variants.py")


def test_variant_text_is_a_label_and_overrides():
    assert variants.parse_variant("centred:model.temporal_padding=centred,epochs=2") == (
        "centred",
        ["model.temporal_padding=centred", "epochs=2"],
    )
    with pytest.raises(ValueError, match="LABEL:OVERRIDE"):
        variants.parse_variant("centred")


def test_runs_train_with_the_overrides_and_summarises_its_metrics(tmp_path, monkeypatch):
    monkeypatch.setattr(variants, "PROJECT", tmp_path)
    fake_train = tmp_path / "train.py"
    fake_train.write_text(
        "import json, sys, pathlib\n"
        "args = dict(a.split('=', 1) for a in sys.argv[1:])\n"
        "out = pathlib.Path(args['hydra.run.dir']); out.mkdir(parents=True)\n"
        "error = 40.0 if args.get('model.temporal_padding') == 'authors' else 41.0\n"
        "(out / 'metrics.json').write_text(json.dumps({'mpjpe_mm': error, 'p_mpjpe_mm': 1.0,"
        " 'n_mpjpe_mm': 2.0, 'mpjve_mm': 3.0, 'selection': 'last_epoch', 'epochs': 2}))\n"
    )
    rows = [
        variants.run_variant("padding", label, [f"model.temporal_padding={label}"])
        for label in ("authors", "centred")
    ]
    assert [row["mpjpe_mm"] for row in rows] == [40.0, 41.0]
    path = variants.report("padding", rows, tmp_path / "bench", "cmd")
    assert "| authors | `model.temporal_padding=authors` | 40.00 |" in path.read_text()
    saved = json.loads((tmp_path / "bench" / "variants_padding.json").read_text())
    assert saved["rows"][1]["label"] == "centred"
