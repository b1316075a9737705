"""benchmarks/variants.py, run as a maintainer runs it, on a stand-in project whose train.py
writes a metrics.json at once (the script trains the project it sits in)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from trilab.testing import run_to_completion

VARIANTS = Path(__file__).resolve().parents[1] / "benchmarks" / "variants.py"
FAKE_TRAIN = (
    "import json, sys, pathlib\n"
    "args = dict(a.split('=', 1) for a in sys.argv[1:])\n"
    "out = pathlib.Path(args['hydra.run.dir']); out.mkdir(parents=True)\n"
    "error = 40.0 if args.get('model.temporal_padding') == 'authors' else 41.0\n"
    "(out / 'metrics.json').write_text(json.dumps({'mpjpe_mm': error, 'p_mpjpe_mm': 1.0,"
    " 'n_mpjpe_mm': 2.0, 'mpjve_mm': 3.0, 'selection': 'last_epoch',"
    " 'epochs': int(args['epochs'])}))\n"
)


def stand_in_project(root: Path) -> Path:
    (root / "benchmarks").mkdir(parents=True)
    shutil.copy(VARIANTS, root / "benchmarks" / "variants.py")
    (root / "train.py").write_text(FAKE_TRAIN)
    return root / "benchmarks" / "variants.py"


def test_runs_train_with_the_overrides_and_summarises_its_metrics(tmp_path):
    script = stand_in_project(tmp_path / "project")
    out = tmp_path / "results"
    run_to_completion(
        [sys.executable, str(script), "--out", str(out), "--name", "padding"]
        + ["--common", "epochs=2", "--"]
        + ["authors:model.temporal_padding=authors", "centred:model.temporal_padding=centred"]
    )
    rows = json.loads((out / "variants_padding.json").read_text())["rows"]
    assert [(row["label"], row["mpjpe_mm"], row["epochs"]) for row in rows] == [
        ("authors", 40.0, 2),
        ("centred", 41.0, 2),
    ]
    assert rows[1]["overrides"] == ["epochs=2", "model.temporal_padding=centred"]
    table = (out / "variants_padding.md").read_text()
    assert "| authors | `epochs=2 model.temporal_padding=authors` | 40.00 |" in table
    assert (tmp_path / "project" / "outputs" / "variants" / "padding_centred").is_dir()


def test_a_variant_without_overrides_is_refused_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(VARIANTS), "--out", str(tmp_path), "--name", "x", "centred"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "variant 'centred' is not LABEL:OVERRIDE" in done.stderr
    assert not list(tmp_path.iterdir())
