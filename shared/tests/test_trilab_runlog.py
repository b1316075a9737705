import json
import subprocess
import sys
import textwrap

import numpy as np
import torch

from trilab.runlog import RunLogger, read_scalars


def test_scalars_go_to_jsonl_and_tensorboard(tmp_path):
    with RunLogger(tmp_path) as log:
        log.info("hello")
        log.log_scalars({"train/loss": torch.tensor(0.5), "val/acc": np.float32(0.25)}, step=1)
        log.log_scalars({"train/loss": 0.25}, step=2)
    records = read_scalars(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["train/loss"] == 0.5 and records[0]["val/acc"] == 0.25
    assert records[1]["train/loss"] == 0.25
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert "hello" in (tmp_path / "run.log").read_text()


def test_tensorboard_file_holds_the_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with RunLogger(tmp_path) as log:
        for step in range(3):
            log.log_scalars({"loss": 1.0 / (step + 1)}, step=step)
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"))
    accumulator.Reload()
    values = [event.value for event in accumulator.Scalars("loss")]
    assert np.allclose(values, [1.0, 0.5, 1 / 3])


def test_metrics_json_converts_numpy_and_torch(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        path = log.write_metrics(
            {
                "mpjpe_mm": np.float64(12.5),
                "per_action": {"Walk": torch.tensor(3.0)},
                "cm": np.eye(2, dtype=int),
                "bad": float("nan"),
            }
        )
    metrics = json.loads(path.read_text())
    assert metrics == {
        "mpjpe_mm": 12.5,
        "per_action": {"Walk": 3.0},
        "cm": [[1, 0], [0, 1]],
        "bad": "nan",
    }


def test_disabled_logger_writes_nothing(tmp_path):
    run_dir = tmp_path / "rank1"
    with RunLogger(run_dir, enabled=False) as log:
        log.info("quiet")
        log.log_scalars({"loss": 1.0}, step=0)
        assert list(log.progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
        log.write_metrics({"a": 1})
    assert not run_dir.exists()


def test_progress_yields_every_item(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        assert list(log.progress(iter(range(7)), desc="epoch 1", total=7)) == list(range(7))


def test_hydra_run_dir_override_decides_where_metrics_go(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
        import hydra
        from trilab.hydra_utils import run_dir
        from trilab.runlog import RunLogger

        @hydra.main(version_base="1.3", config_path=None, config_name=None)
        def main(cfg):
            with RunLogger(run_dir(), tensorboard=False) as log:
                log.write_metrics({"where": str(run_dir())})

        main()
        """
        )
    )
    target = tmp_path / "chosen_run_dir"
    subprocess.run(
        [sys.executable, str(app), f"hydra.run.dir={target}"],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    assert json.loads((target / "metrics.json").read_text())["where"] == str(target)
