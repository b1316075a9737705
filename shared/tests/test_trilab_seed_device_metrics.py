import numpy as np
import pytest
import torch

from trilab.device import DeviceError, select_device
from trilab.metrics import ThroughputMeter, Timer, classification_metrics
from trilab.seed import seed_everything


def test_seed_everything_repeats_draws():
    g1 = seed_everything(3)
    a = (torch.rand(3), np.random.rand(3), torch.rand(2, generator=g1))
    g2 = seed_everything(3)
    b = (torch.rand(3), np.random.rand(3), torch.rand(2, generator=g2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_deterministic_switch():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        select_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="CUDA is not available.*device=cpu"):
        select_device("cuda")


def test_classification_metrics_against_hand_counts():
    y_true = [1, 1, 1, 0, 0, 0, 0, 0]
    y_pred = [1, 1, 0, 0, 0, 0, 1, 1]
    m = classification_metrics(
        y_true,
        y_pred,
        class_names=("public", "private"),
        y_score=[0.9, 0.8, 0.4, 0.1, 0.2, 0.3, 0.6, 0.7],
    )
    assert m["accuracy"] == pytest.approx(5 / 8)
    # recall private 2/3, recall public 3/5
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 5) / 2)
    assert m["per_class"]["private"]["precision"] == pytest.approx(2 / 4)
    assert m["per_class"]["public"]["precision"] == pytest.approx(3 / 4)
    f1_private = 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)
    f1_public = 2 * 0.75 * 0.6 / (0.75 + 0.6)
    assert m["per_class"]["private"]["f1"] == pytest.approx(f1_private)
    assert m["macro_f1"] == pytest.approx((f1_private + f1_public) / 2)
    assert m["confusion_matrix"] == [[3, 2], [1, 2]]
    assert m["per_class"]["private"]["support"] == 3
    # private scores .9 .8 .4 vs public .1 .2 .3 .6 .7: 5 + 5 + 3 = 13 of 15 pairs ordered
    assert m["roc_auc"] == pytest.approx(13 / 15)


def test_classification_metrics_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels \\[2\\]"):
        classification_metrics([0, 2], [0, 1])
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        classification_metrics([0, 1, 1], [0, 1])


def test_throughput_and_timer():
    meter = ThroughputMeter()
    meter.update(100, 2.0)
    meter.update(50, 1.0)
    assert meter.rate == pytest.approx(50.0)
    with Timer() as timer:
        sum(range(10000))
    assert timer.seconds > 0
