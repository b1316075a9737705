import pytest
import torch

from drag.model.backbone import Backbone
from drag.model.cgl import ChannelGrouping, cgl_pretrain_loss, membership_targets
from drag.model.drag import DRAG
from drag.model.gcn import AttentionAdjacency, RegionGCN
from drag.model.losses import class_weights_from_labels, distance_loss, diversity_loss


@pytest.fixture(scope="module")
def tiny_drag():
    torch.manual_seed(0)
    return DRAG(Backbone("resnet18"), groups=3, feature_hw=(2, 2))


def test_backbone_feature_shape_and_unknown_arch():
    backbone = Backbone("resnet18")
    assert backbone.features(torch.zeros(1, 3, 64, 96)).shape == (1, 512, 2, 3)
    assert backbone(torch.zeros(2, 3, 64, 64)).shape == (2, 2)
    with pytest.raises(ValueError, match="resnet7"):
        Backbone("resnet7")


def test_backbone_loads_local_weights_file(tmp_path):
    torch.manual_seed(1)
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    backbone = Backbone("resnet18", pretrained=str(path))
    assert torch.equal(backbone.trunk[0].weight, reference.conv1.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        Backbone("resnet18", pretrained=str(tmp_path / "missing.pth"))


def test_gcn_layer_matches_hand_computation_with_negative_adjacency():
    # A with negative entries and a negative row sum; worked out by hand:
    # diagonal SET to 1 -> [[1,-2,1],[1,1,.5],[0,3,1]]; row sums 0, 2.5, 4 clamped below at 1
    # -> 1, 2.5, 4; d^-1/2 = 1, 0.632456, 0.5; A_hat[i,j] = d_i A[i,j] d_j;
    # X W^T = [[1,0],[0,2],[1,2]]; out = A_hat X W^T + b
    gcn = RegionGCN(node_dim=2)
    conv = gcn.conv1
    with torch.no_grad():
        conv.lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # (out, in), no bias
        conv.bias.copy_(torch.tensor([0.1, -0.1]))
    assert conv.lin.bias is None
    adjacency = torch.tensor([[[0.5, -2.0, 1.0], [1.0, 0.2, 0.5], [0.0, 3.0, -1.0]]])
    before = adjacency.clone()
    nodes = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    expected = torch.tensor(
        [[[1.6, -1.629822], [0.890569, 1.016228], [0.35, 2.297367]]]  # by hand, see above
    )
    assert torch.allclose(conv(nodes, adjacency), expected, atol=1e-5)
    assert torch.equal(adjacency, before)  # the caller's A is not modified
    gcn.eval()  # both layers: ReLU then dropout (off in eval)
    hidden = torch.relu(conv(nodes, adjacency))
    assert torch.equal(gcn(nodes, adjacency), torch.relu(gcn.conv2(hidden, adjacency)))


def test_attention_adjacency_is_the_authors_computation():
    torch.manual_seed(0)
    nodes_k, dim = 3, 4
    attention = AttentionAdjacency(dim, nodes_k, attn_dim=2, dropout=0.1).eval()
    x = torch.randn(2, nodes_k, dim)
    q = x @ attention.query.weight.T + attention.query.bias
    k = x @ attention.key.weight.T + attention.key.bias
    v = x @ attention.value.weight.T + attention.value.bias  # each node -> K numbers
    p = torch.softmax(q @ k.transpose(1, 2) / 2**0.5, dim=-1)
    y = p @ v
    expected = torch.empty(2, nodes_k, nodes_k)
    for i in range(nodes_k):  # A[i, :] = W (row i of Y^T = column i of Y) + b
        expected[:, i] = y[:, :, i] @ attention.output.weight.T + attention.output.bias
    got = attention(x)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, attention.output(y), atol=1e-3)  # the transpose matters
    assert (got < 0).any()  # no ReLU: negative entries survive
    attention.train()
    torch.manual_seed(1)
    assert not torch.allclose(attention(x), got)  # dropout on the attention while training


def test_region_maps_are_weighted_channel_means():
    cgl = ChannelGrouping(channels=4, groups=2)
    features = torch.rand(2, 4, 3, 3)
    maps, weights = cgl(features)
    expected = (weights[:, :, :, None, None] * features[:, None]).mean(dim=2)
    assert torch.allclose(maps, expected, atol=1e-6)
    assert weights.min() >= 0 and weights.max() <= 1


def test_forward_shapes_and_every_parameter_gets_a_finite_gradient(tiny_drag):
    out = tiny_drag(torch.randn(2, 3, 64, 64), output="all")
    assert out["logits"].shape == (2, 2)
    assert out["region_maps"].shape == (2, 3, 2, 2)
    assert out["adjacency"].shape == (2, 3, 3)
    out["logits"].sum().backward()
    unused = {"backbone.fc.weight", "backbone.fc.bias"}  # the fine-tuning head is not used
    for name, param in tiny_drag.named_parameters():
        if name in unused:
            continue
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    tiny_drag.zero_grad()


def test_dropout_is_off_in_eval_and_on_in_train(tiny_drag):
    x = torch.randn(2, 3, 64, 64)
    tiny_drag.eval()
    assert torch.equal(tiny_drag(x), tiny_drag(x))
    features = torch.rand(2, 512, 2, 2)
    tiny_drag.train()
    torch.manual_seed(0)
    first = tiny_drag.forward_features(features)["logits"]
    second = tiny_drag.forward_features(features)["logits"]
    assert not torch.equal(first, second)  # dropout active while training
    tiny_drag.eval()
    assert torch.equal(
        tiny_drag.forward_features(features)["logits"],
        tiny_drag.forward_features(features)["logits"],
    )


def test_frozen_backbone_gets_no_gradient_and_keeps_bn_statistics(tiny_drag):
    tiny_drag.freeze_backbone = True
    tiny_drag.train()
    assert not tiny_drag.backbone.training and tiny_drag.cgl.training
    stats = tiny_drag.backbone.trunk[1].running_mean.clone()
    tiny_drag(torch.randn(2, 3, 64, 64)).sum().backward()
    assert tiny_drag.backbone.trunk[0].weight.grad is None
    assert torch.equal(stats, tiny_drag.backbone.trunk[1].running_mean)
    assert tiny_drag.head.weight.grad is not None
    tiny_drag.freeze_backbone = False
    tiny_drag.zero_grad()


def test_feature_size_mismatch_is_explained(tiny_drag):
    with pytest.raises(ValueError, match="image_size"):
        tiny_drag(torch.randn(1, 3, 128, 128))


def test_cgl_pretraining_loss_pulls_member_weights_up():
    torch.manual_seed(0)
    cgl = ChannelGrouping(channels=8, groups=2)
    assignment = torch.tensor([0, 0, 1, 1, 0, 1, 0, 1])
    membership = membership_targets(assignment, 2)
    assert membership.shape == (2, 8) and torch.equal(membership.sum(0), torch.ones(8))
    optimizer = torch.optim.Adam(cgl.parameters(), lr=1e-2)
    features = torch.rand(4, 8, 2, 2)
    for _ in range(100):
        loss = cgl_pretrain_loss(cgl.weight_logits(features), membership)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = torch.sigmoid(cgl.weight_logits(features))
    assert (weights.argmax(1) == assignment).all()  # members high: not the inverted notebook loss
    assert weights[:, 0, assignment == 0].min() > 0.5
    assert weights[:, 0, assignment == 1].max() < 0.5


def test_region_losses_prefer_compact_disjoint_maps():
    compact = torch.zeros(1, 2, 5, 5)
    compact[0, 0, 0, 0] = 1
    compact[0, 1, 4, 4] = 1
    spread = torch.rand(1, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    assert distance_loss(compact) < distance_loss(spread)
    same = compact[:, :1].repeat(1, 2, 1, 1)
    assert diversity_loss(compact) < diversity_loss(same)
    assert float(diversity_loss(compact)) == 0.0


def test_class_weights_are_one_minus_frequency():
    weights = class_weights_from_labels([0, 0, 0, 1])
    assert torch.allclose(weights, torch.tensor([0.25, 0.75]))


def test_authors_dropout_at_eval_is_selectable():
    torch.manual_seed(0)
    gcn = RegionGCN(node_dim=4, dropout=0.5, dropout_at_eval=True).eval()
    nodes, adjacency = torch.rand(2, 3, 4), torch.rand(2, 3, 3)
    assert not torch.equal(gcn(nodes, adjacency), gcn(nodes, adjacency))  # the notebook's bug
    gcn.dropout_at_eval = False
    assert torch.equal(gcn(nodes, adjacency), gcn(nodes, adjacency))
