import numpy as np
import pytest
import torch

from glagcn.data.batching import flip_poses
from glagcn.evaluation import predict_sequence
from glagcn.model import GLAGCN, SlidingLifter, count_parameters, macs_per_frame
from glagcn.model.layers import JointwiseLinear, StridedProjection, TemporalConv
from glagcn.skeleton import H36M_17, HUMANEVA_15, MPI_INF_3DHP_17

AUTHORS_PARAMETERS = {(3, 3, 3): 844_076, (3, 3, 3, 3): 1_096_466, (3, 3, 3, 3, 3): 1_348_856}


@pytest.mark.parametrize(("widths", "expected"), AUTHORS_PARAMETERS.items())
def test_parameter_count_matches_the_authors_configuration(widths, expected):
    shared = GLAGCN(H36M_17, widths, channels=96, output_layer="shared", sequence_branch=False)
    assert count_parameters(shared) == expected
    per_joint = GLAGCN(
        H36M_17, widths, channels=96, output_layer="per_joint", sequence_branch=False
    )
    assert count_parameters(per_joint) - expected == 16 * (96 * 3 + 3)


def test_macs_of_the_243_frame_model_are_about_one_and_a_half_giga():
    model = GLAGCN(H36M_17, (3, 3, 3, 3, 3), output_layer="shared", sequence_branch=False)
    assert 1.3e9 < macs_per_frame(model) < 1.8e9


@pytest.mark.parametrize("skeleton", [H36M_17, HUMANEVA_15, MPI_INF_3DHP_17])
def test_shapes_for_every_skeleton(skeleton):
    model = GLAGCN(skeleton, (3, 3), channels=16)
    x = torch.randn(2, 9, skeleton.num_joints, 2)
    centre, sequence = model(x, return_sequence=True)
    assert centre.shape == (2, 1, skeleton.num_joints, 3)
    assert sequence.shape == (2, 9, skeleton.num_joints, 3)
    assert model(x).shape == (2, 1, skeleton.num_joints, 3)


def test_wrong_window_length_is_refused():
    model = GLAGCN(H36M_17, (3, 3), channels=8)
    with pytest.raises(ValueError, match="windows of 9 frames, got 10"):
        model(torch.randn(1, 10, 17, 2))
    with pytest.raises(ValueError, match="17 joints x 2 values, got 15 x 2"):
        model(torch.randn(1, 9, 15, 2))


def _frames_seen(layer, frames: int, output: int) -> list[int]:
    """Input frames that output frame ``output`` of ``layer`` depends on (by autograd)."""
    x = torch.randn(1, 4, frames, 3, requires_grad=True)
    layer(x)[:, :, output].sum().backward()
    return torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3))).flatten().tolist()


@pytest.mark.parametrize(("padding", "centre"), [("authors", 0), ("centred", 1)])
def test_strided_temporal_output_i_is_centred_on_input_frame_3i_plus_offset(padding, centre):
    conv = TemporalConv(4, 4, kernel_size=9, stride=3, temporal_padding=padding).eval()
    assert conv(torch.randn(1, 4, 27, 3)).shape[2] == 9
    for i in range(9):  # kernel 9: frames centre - 4 .. centre + 4 that exist
        middle = 3 * i + centre
        assert _frames_seen(conv, 27, i) == list(range(max(middle - 4, 0), min(middle + 5, 27)))
    projection = StridedProjection(4, 4, stride=3, temporal_padding=padding).eval()
    assert [_frames_seen(projection, 27, i) for i in range(9)] == [
        [3 * i + centre] for i in range(9)
    ]


def test_the_two_paddings_give_different_outputs_for_the_same_weights():
    torch.manual_seed(0)
    authors = GLAGCN(H36M_17, (3, 3, 3), channels=8, temporal_padding="authors").eval()
    centred = GLAGCN(H36M_17, (3, 3, 3), channels=8, temporal_padding="centred").eval()
    centred.load_state_dict(authors.state_dict())
    x = torch.randn(2, 27, 17, 2)
    assert (authors(x) - centred(x)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="temporal_padding must be one of"):
        GLAGCN(H36M_17, (3, 3), channels=8, temporal_padding="same")


@pytest.mark.parametrize("padding", ["authors", "centred"])
def test_sliding_form_equals_the_strided_form_on_edge_padded_windows(padding):
    """Frame t's pose is the strided model on frames t - 4 .. t + 4 of the edge-padded
    sequence: it changes with frame t + 4 and not with t + 5.  The padding choice acts inside
    each window, so this holds for both."""
    torch.manual_seed(0)
    # float64: the two forms reduce in different orders, equal only up to rounding
    model = GLAGCN(H36M_17, (3, 3), channels=8, temporal_padding=padding).eval().double()
    sequence = torch.randn(6, 17, 2, dtype=torch.float64)
    dense = SlidingLifter(model, max_windows=4)(sequence)
    assert dense.shape == (6, 17, 3)
    padded = torch.cat([sequence[:1].repeat(4, 1, 1), sequence, sequence[-1:].repeat(4, 1, 1)])
    for frame in range(6):
        expected = model(padded[frame : frame + 9].unsqueeze(0))[0, 0]
        torch.testing.assert_close(dense[frame], expected, rtol=1e-10, atol=1e-12)
    batched = SlidingLifter(model)(sequence.unsqueeze(0).repeat(2, 1, 1, 1))
    torch.testing.assert_close(batched[1], dense, rtol=1e-10, atol=1e-12)
    longer = torch.randn(20, 17, 2, dtype=torch.float64)
    reference = SlidingLifter(model)(longer)
    for changed, affected in ((14, range(10, 19)), (0, range(0, 5))):
        moved = longer.clone()
        moved[changed] += 1.0
        differs = (SlidingLifter(model)(moved) - reference).abs().amax(dim=(1, 2)) > 1e-6
        assert torch.nonzero(differs).flatten().tolist() == list(affected)


def test_sliding_form_gives_the_same_poses_for_any_call_size_and_several_sequences():
    torch.manual_seed(0)
    model = GLAGCN(H36M_17, (3, 3), channels=8).eval().double()
    sequences = torch.randn(2, 13, 17, 2, dtype=torch.float64)
    reference = torch.stack([SlidingLifter(model, max_windows=1)(s) for s in sequences])
    for max_windows in (2, 5, 26, 1000, None):
        torch.testing.assert_close(
            SlidingLifter(model, max_windows)(sequences), reference, rtol=1e-10, atol=1e-12
        )


def test_flip_test_averages_the_mirrored_prediction_mirrored_back():
    torch.manual_seed(0)
    model = GLAGCN(H36M_17, (3, 3), channels=8).eval()
    keypoints = torch.randn(11, 17, 2)
    with torch.no_grad():
        plain = SlidingLifter(model)(keypoints)
        mirrored = flip_poses(SlidingLifter(model)(flip_poses(keypoints, H36M_17)), H36M_17)
    expected = 0.5 * (plain + mirrored)  # the root stays where the model puts it
    predicted = predict_sequence(
        model, keypoints.numpy(), H36M_17, torch.device("cpu"), flip_test=True, max_windows=3
    )
    np.testing.assert_allclose(predicted, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_jointwise_linear_is_one_linear_map_per_joint():
    layer = JointwiseLinear(5, 4, 3)
    x = torch.randn(2, 5, 4)
    out = layer(x)
    for joint in range(5):
        torch.testing.assert_close(
            out[:, joint], x[:, joint] @ layer.weight[joint] + layer.bias[joint]
        )


def test_every_parameter_gets_a_finite_gradient():
    model = GLAGCN(H36M_17, (3, 3), channels=8)
    centre, sequence = model(torch.randn(3, 9, 17, 2), return_sequence=True)
    (centre.sum() + sequence.sum()).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = GLAGCN(H36M_17, (3, 3), channels=16, dropout=0.0, graph_dropout=0.0)
    x = torch.randn(8, 9, 17, 2)
    y = torch.randn(8, 1, 17, 3) * 0.2
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = torch.linalg.vector_norm(model(x) - y, dim=-1).mean()
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2 * first


def test_authors_initialisation_starts_each_graph_unit_at_its_residual():
    torch.manual_seed(0)
    model = GLAGCN(H36M_17, (3, 3), channels=16, init="authors")
    gcn = model.levels[0][0].gcn
    assert torch.all(gcn.bn.weight == 1e-6) and torch.all(gcn.bn.bias == 0)
    assert torch.all(model.expand.gcn.residual[1].weight == 1.0)
    assert torch.all(model.levels[0][0].tcn.bn.weight == 1.0)
    for conv in (*gcn.theta, *gcn.phi, *gcn.project, model.levels[0][1].tcn.conv):
        assert torch.all(conv.bias == 0)
    # He normal over fan-out for the temporal conv: std sqrt(2 / (16 * 9))
    assert model.levels[0][0].tcn.conv.weight.std().item() == pytest.approx(
        (2 / 144) ** 0.5, rel=0.1
    )
    # each subset's projection: std sqrt(2 / (16 * 16 * 3))
    assert gcn.project[0].weight.std().item() == pytest.approx((2 / 768) ** 0.5, rel=0.25)
    default = GLAGCN(H36M_17, (3, 3), channels=16, init="pytorch")
    assert torch.all(default.levels[0][0].gcn.bn.weight == 1.0)


def test_sequence_branch_outputs_signed_coordinates():
    torch.manual_seed(0)
    model = GLAGCN(H36M_17, (3, 3), channels=8, init="pytorch").eval()
    _, sequence = model(torch.randn(4, 9, 17, 2), return_sequence=True)
    assert (sequence < 0).any() and (sequence > 0).any()
