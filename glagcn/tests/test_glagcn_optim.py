import pytest
import torch

from glagcn.optim import Lookahead, bn_momentum, build_optimizer, build_scheduler, set_bn_momentum


def test_lookahead_pulls_back_towards_the_slow_weights_every_k_steps():
    weight = torch.nn.Parameter(torch.tensor([0.0]))
    inner = torch.optim.SGD([weight], lr=1.0)
    optimizer = Lookahead(inner, alpha=0.5, k=2)
    for _ in range(2):
        weight.grad = torch.tensor([-1.0])  # each fast step adds 1
        optimizer.step()
    # fast weight reached 2, slow moves half way from 0: both become 1
    assert weight.item() == pytest.approx(1.0)
    weight.grad = torch.tensor([-1.0])
    optimizer.step()
    assert weight.item() == pytest.approx(2.0)  # a plain fast step in between


def test_lookahead_state_round_trip():
    model = torch.nn.Linear(3, 1)
    optimizer, scheduled = build_optimizer(model, "ranger", lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    other_model = torch.nn.Linear(3, 1)
    other, _ = build_optimizer(other_model, "ranger", lr=0.01)
    other.load_state_dict(state)
    assert other.fast_steps == 1
    for a, b in zip(other.slow, optimizer.slow, strict=True):
        assert torch.equal(a, b)
    scheduler = build_scheduler(scheduled, "cosine", epochs=4, lr_min=1e-5)
    for _ in range(4):
        scheduler.step()
    assert scheduled.param_groups[0]["lr"] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        build_optimizer(model, "sgd", lr=0.1)


def test_bn_momentum_decays_from_start_to_end():
    assert bn_momentum(0, 80) == pytest.approx(0.1)
    assert bn_momentum(79, 80) == pytest.approx(0.001)
    assert bn_momentum(0, 80) > bn_momentum(40, 80) > bn_momentum(79, 80)
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 3))
    set_bn_momentum(model, 0.02)
    assert model[0].momentum == 0.02
