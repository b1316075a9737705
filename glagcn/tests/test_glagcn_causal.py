"""A causal GLA-GCN (``model.causal=true``): each frame's window ends at that frame.

The authors' ``--causal`` cannot run as published (their ``common/causal_model.py`` is missing,
and ``S_AGCN(causal=True)`` slices its skips past the block's frames); the reference is their
forward with VideoPose3D's strided-model causal shift and their Evaluate_Generator's causal
padding (``causal_shift = pad``).  float64 throughout.
"""

import numpy as np
import pytest
import torch

from glagcn.convert_checkpoint import convert_file
from glagcn.data.batching import WindowedPoses
from glagcn.data.sequences import PoseSequence
from glagcn.lift import lift
from glagcn.model import GLAGCN, SlidingLifter, build_model, model_from_checkpoint
from glagcn.model.authors_reference import (
    authors_adjacency,
    authors_causal_shifts,
    authors_forward,
    random_authors_state_dict,
    strided_causal_shifts,
)
from glagcn.skeleton import H36M_17
from trilab.checkpoint import save_checkpoint

H36M_PAIRS = [(child + 1, parent + 1) for child, parent in H36M_17.bones]
WIDTHS = (3, 3)


def _model(causal: bool) -> GLAGCN:
    torch.manual_seed(0)
    config = {"filter_widths": list(WIDTHS), "channels": 8, "temporal_kernel": 3}
    model = build_model(dict(config, causal=causal), H36M_17).double().eval()
    for name, tensor in model.state_dict().items():  # non-trivial BN statistics
        if "running" in name:
            tensor.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("causal", [True, False])
def test_a_causal_prediction_does_not_change_with_later_frames(causal):
    model = _model(causal)
    sequence = torch.randn(
        20, 17, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    later = sequence.clone()
    later[12:] += torch.randn(8, 17, 2, dtype=torch.float64)
    with torch.no_grad():
        before, after = SlidingLifter(model)(sequence), SlidingLifter(model)(later)
    past = (after[:12] - before[:12]).abs().amax(dim=(1, 2))
    if causal:
        assert past.max() == 0.0
    else:  # the symmetric model looks up to 4 frames ahead: some of frames 8-11 see it
        assert past[8:].max() > 1e-6 and past[:8].max() == 0.0
    assert (after[12:] - before[12:]).abs().max() > 1e-6


def test_converted_causal_checkpoint_computes_the_authors_causal_forward(tmp_path):
    theirs = random_authors_state_dict(8, WIDTHS, num_joints=17, seed=5)
    source = tmp_path / "causal.bin"
    torch.save({"epoch": 3, "model_pos": theirs}, source)
    converted, extra = model_from_checkpoint(
        convert_file(source, tmp_path / "causal.pt", causal=True), torch.device("cpu")
    )
    assert extra["model_config"]["causal"] is True and converted.causal
    model = converted.double()
    params = {
        key.removeprefix("module."): v.double() if v.is_floating_point() else v
        for key, v in theirs.items()
    }
    adjacency = authors_adjacency(H36M_PAIRS, 17)
    shifts = strided_causal_shifts(WIDTHS, causal=True)
    window = torch.randn(
        3, 9, 17, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    sequence = torch.randn(
        12, 17, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        expected = authors_forward(window, params, WIDTHS, adjacency, skip_shifts=shifts)
        assert (model(window) - expected).abs().max() < 1e-10
        symmetric = authors_forward(window, params, WIDTHS, adjacency)
        assert (symmetric - expected).abs().max() > 1e-3  # the skip's frame matters
        # their Evaluate_Generator with causal_shift = pad: frame t's window is t - 2 pad .. t
        pad = 4
        padded = torch.cat([sequence[:1].expand(2 * pad, -1, -1), sequence])
        windows = torch.stack([padded[t : t + 2 * pad + 1] for t in range(len(sequence))])
        expected_sequence = authors_forward(windows, params, WIDTHS, adjacency, skip_shifts=shifts)
        lifted = SlidingLifter(model)(sequence)
        assert (lifted - expected_sequence[:, 0]).abs().max() < 1e-10
        # as published, S_AGCN(causal=True) shifts the skip by f // 2 times the dilation: the
        # first level's skip has 2 frames where the strided block has 3
        with pytest.raises(RuntimeError, match="size of tensor a"):
            authors_forward(
                window, params, WIDTHS, adjacency, skip_shifts=authors_causal_shifts(WIDTHS, True)
            )


def test_causal_training_windows_end_at_their_target_frame():
    frames = 6
    keypoints = np.arange(frames, dtype=np.float32)[:, None, None] * np.ones((1, 17, 2))
    poses = np.arange(frames, dtype=np.float32)[:, None, None] * np.ones((1, 17, 3))
    sequence = PoseSequence("S1", "Walking", 0, keypoints, poses)
    for causal, first_window, window_of_3 in (
        (True, [0] * 9, [0, 0, 0, 0, 0, 0, 1, 2, 3]),
        (False, [0, 0, 0, 0, 0, 1, 2, 3, 4], [0, 0, 1, 2, 3, 4, 5, 5, 5]),
    ):
        table = WindowedPoses([sequence], 9, H36M_17, full_sequence_3d=False, causal=causal)
        windows, targets = table.batch([0, 3])
        assert windows[0, :, 0, 0].tolist() == first_window
        assert windows[1, :, 0, 0].tolist() == window_of_3
        assert targets[:, 0, 0, 0].tolist() == [0.0, 3.0]  # the frame each window predicts


def test_lift_pads_only_the_past_for_a_causal_checkpoint(tmp_path):
    model = _model(causal=True).float()
    config = {"filter_widths": list(WIDTHS), "channels": 8, "temporal_kernel": 3, "causal": True}
    checkpoint = save_checkpoint(
        tmp_path / "causal.pt",
        model=model,
        epoch=0,
        extra={"model_config": config, "skeleton": "h36m17"},
    )
    keypoints = np.random.default_rng(0).uniform(300, 700, size=(16, 17, 2))
    later = keypoints.copy()
    later[10:] += 40.0
    poses, moved = lift(keypoints, (1000, 1000), checkpoint), lift(later, (1000, 1000), checkpoint)
    np.testing.assert_array_equal(poses[:10], moved[:10])
    assert np.abs(poses[10:] - moved[10:]).max() > 1e-4
