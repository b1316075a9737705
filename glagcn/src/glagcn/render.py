"""Headless pictures of lifting results: 2D input beside the 3D skeleton, and training curves.

Everything draws with Matplotlib's Agg backend (no display needed).  Videos are written with
OpenCV (``.mp4``, frame by frame: a long clip is never held in memory) or Pillow (``.gif``,
which keeps every frame until it is written; use MP4 for long clips).  With a video the left
panel shows its frames under the 2D skeleton, read one at a time.  Poses are in camera
coordinates (x right, y down, z forward), as the model predicts them; the 3D view shows them
with y pointing up.  Frames whose pose is NaN (not lifted) show no skeleton.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trilab.errors import UserError  # noqa: E402

LEFT_COLOUR, RIGHT_COLOUR, CENTRE_COLOUR = "#1f77b4", "#d62728", "#333333"


class RenderError(UserError, ValueError):
    """Inputs that cannot be drawn together (mismatched lengths, unknown file type, ...)."""


def _bones(parents: Sequence[int]) -> list[tuple[int, int]]:
    return [(child, parent) for child, parent in enumerate(parents) if parent >= 0]


def _bone_colours(parents, joints_left, joints_right) -> list[str]:
    colours = []
    for child, _ in _bones(parents):
        if child in joints_right:
            colours.append(RIGHT_COLOUR)
        elif child in joints_left:
            colours.append(LEFT_COLOUR)
        else:
            colours.append(CENTRE_COLOUR)
    return colours


def _display_3d(poses: np.ndarray) -> np.ndarray:
    """Camera coordinates -> plotting axes (x, z depth, -y up)."""
    return np.stack([poses[..., 0], poses[..., 2], -poses[..., 1]], axis=-1)


class SkeletonFigure:
    """A figure with the 2D input on the left and the 3D pose on the right, updated per frame."""

    def __init__(
        self,
        keypoints_2d,
        poses_3d,
        parents,
        joints_left,
        joints_right,
        image_size=None,
        title=None,
        size_px=(960, 480),
    ):
        keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32)
        poses_3d = np.asarray(poses_3d, dtype=np.float32)
        if len(keypoints_2d) != len(poses_3d):
            raise RenderError(
                f"{len(keypoints_2d)} frames of 2D keypoints but {len(poses_3d)} frames of 3D poses"
            )
        if keypoints_2d.shape[1] != len(parents) or poses_3d.shape[1] != len(parents):
            raise RenderError(
                f"the skeleton has {len(parents)} joints but the inputs have "
                f"{keypoints_2d.shape[1]} (2D) and {poses_3d.shape[1]} (3D)"
            )
        self.keypoints_2d = keypoints_2d
        self.poses_3d = _display_3d(poses_3d)
        self.bones = _bones(parents)
        colours = _bone_colours(parents, set(joints_left), set(joints_right))
        dpi = 100
        self.figure = plt.figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
        self.ax2d = self.figure.add_subplot(1, 2, 1)
        self.ax3d = self.figure.add_subplot(1, 2, 2, projection="3d")
        if title:
            self.figure.suptitle(title)
        self.image_artist = None
        self.image_size = image_size
        self._fix_axes(image_size)
        self.lines2d = [self.ax2d.plot([], [], color=c, lw=2)[0] for c in colours]
        self.lines3d = [self.ax3d.plot([], [], [], color=c, lw=2)[0] for c in colours]
        self.frame_text = self.ax2d.set_title("")

    def _fix_axes(self, image_size) -> None:
        if image_size is not None:
            width, height = image_size
            self.ax2d.set_xlim(0, width)
            self.ax2d.set_ylim(height, 0)
        else:
            finite = self.keypoints_2d[np.isfinite(self.keypoints_2d).all(-1)]
            if not len(finite):
                finite = np.zeros((1, 2), dtype=np.float32)
            low, high = finite.min(0), finite.max(0)
            margin = 0.1 * float((high - low).max() + 1e-6)
            self.ax2d.set_xlim(low[0] - margin, high[0] + margin)
            self.ax2d.set_ylim(high[1] + margin, low[1] - margin)
        self.ax2d.set_aspect("equal")
        self.ax2d.set_xticks([])
        self.ax2d.set_yticks([])
        # One cube around the whole sequence, so the skeleton does not jump between frames.
        points = self.poses_3d.reshape(-1, 3)
        points = points[np.isfinite(points).all(-1)]
        if not len(points):
            points = np.zeros((1, 3), dtype=np.float32)
        centre = points.mean(0)
        radius = float(np.abs(points - centre).max()) or 1.0
        for setter, c in zip(
            (self.ax3d.set_xlim, self.ax3d.set_ylim, self.ax3d.set_zlim), centre, strict=True
        ):
            setter(c - radius, c + radius)
        self.ax3d.set_box_aspect((1, 1, 1))
        self.ax3d.view_init(elev=15.0, azim=-70.0)
        self.ax3d.set_xticklabels([])
        self.ax3d.set_yticklabels([])
        self.ax3d.set_zticklabels([])

    def draw(self, index: int, label: str = "", background: np.ndarray | None = None) -> np.ndarray:
        """Draw frame ``index`` and return it as an RGB uint8 image."""
        if background is not None:
            if self.image_artist is None:
                # Stretched over the keypoints' image size, so a video rendered at another
                # resolution than the detector saw still lines up with the skeleton.
                width, height = self.image_size or background.shape[1::-1]
                self.image_artist = self.ax2d.imshow(
                    background, zorder=0, extent=(0, width, height, 0)
                )
            else:
                self.image_artist.set_data(background)
        points2d = self.keypoints_2d[index]
        points3d = self.poses_3d[index]
        for line, (child, parent) in zip(self.lines2d, self.bones, strict=True):
            line.set_data(points2d[[child, parent], 0], points2d[[child, parent], 1])
        for line, (child, parent) in zip(self.lines3d, self.bones, strict=True):
            pair = points3d[[child, parent]]
            line.set_data_3d(pair[:, 0], pair[:, 1], pair[:, 2])
        self.frame_text.set_text(label)
        self.figure.canvas.draw()
        return np.asarray(self.figure.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        plt.close(self.figure)


def _video_frames(video_path: str | Path, frame_indices: np.ndarray):
    """Yield the RGB video frame for each requested index (indices ascending), one at a time."""
    from glagcn.video_io import VideoError, iter_frames

    try:
        for _, frame in iter_frames(video_path, frame_indices):
            yield frame
    except VideoError as error:
        raise RenderError(str(error)) from None


def render_sequence(
    keypoints_2d: np.ndarray,
    poses_3d: np.ndarray,
    skeleton,
    out_path: str | Path,
    fps: float = 25.0,
    image_size: tuple[int, int] | None = None,
    frame_indices: np.ndarray | None = None,
    video_path: str | Path | None = None,
    title: str | None = None,
    progress: bool = False,
) -> Path:
    """Write an MP4 or GIF (chosen by the suffix) of the 2D input beside the lifted 3D poses.

    ``skeleton`` needs ``parents``, ``joints_left`` and ``joints_right``.  With ``video_path``
    the 2D panel shows the video frames (``frame_indices`` selects them) under the keypoints.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise RenderError(f"{out_path}: output must end in .mp4 or .gif")
    frame_indices = np.arange(len(poses_3d)) if frame_indices is None else np.asarray(frame_indices)
    if len(frame_indices) != len(poses_3d):
        raise RenderError(f"{len(frame_indices)} frame indices for {len(poses_3d)} poses")
    figure = SkeletonFigure(
        keypoints_2d,
        poses_3d,
        skeleton.parents,
        skeleton.joints_left,
        skeleton.joints_right,
        image_size=image_size,
        title=title,
    )
    backgrounds = (
        _video_frames(video_path, frame_indices)
        if video_path is not None
        else iter(lambda: None, 0)
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    try:
        with tqdm(
            total=len(frame_indices),
            unit="frame",
            desc=f"rendering {out_path.name}",
            disable=not progress,
        ) as bar:

            def frames():
                for i, f in enumerate(frame_indices):
                    yield figure.draw(i, f"frame {int(f)}", next(backgrounds))
                    bar.update(1)

            if suffix == ".mp4":
                _write_mp4(frames(), out_path, fps)
            else:
                _write_gif(frames(), out_path, fps)
    finally:
        figure.close()
    return out_path


def _write_mp4(frames, out_path: Path, fps: float) -> None:
    import cv2

    writer = None
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(
                    str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
                )
                if not writer.isOpened():
                    raise RenderError(f"OpenCV cannot write {out_path}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()


def _write_gif(frames, out_path: Path, fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(frame).quantize(colors=64) for frame in frames]
    images[0].save(
        out_path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0
    )


def render_frames_png(
    keypoints_2d: np.ndarray,
    poses_3d: np.ndarray,
    skeleton,
    out_path: str | Path,
    frames: Sequence[int] | None = None,
    image_size: tuple[int, int] | None = None,
    n_frames: int = 4,
    video_path: str | Path | None = None,
    frame_indices: np.ndarray | None = None,
) -> Path:
    """A PNG with selected rows of the sequence (default: ``n_frames`` evenly spaced among the
    lifted ones), one row each; with ``video_path`` over the video frames ``frame_indices``."""
    total = len(poses_3d)
    if frames is not None:
        chosen = list(frames)
    else:
        lifted = np.flatnonzero(np.isfinite(np.asarray(poses_3d)).all(axis=(1, 2)))
        lifted = lifted if len(lifted) else np.arange(total)
        picks = np.linspace(0, len(lifted) - 1, min(n_frames, len(lifted))).round().astype(int)
        chosen = lifted[picks].tolist()
    bad = [f for f in chosen if not 0 <= f < total]
    if bad:
        raise RenderError(f"frames {bad} are outside the sequence of {total} frames")
    frame_indices = np.arange(total) if frame_indices is None else np.asarray(frame_indices)
    backgrounds: dict[int, np.ndarray] = {}
    if video_path is not None:
        wanted = sorted({int(frame_indices[f]) for f in chosen})
        backgrounds = dict(zip(wanted, _video_frames(video_path, wanted), strict=True))
    figure = SkeletonFigure(
        keypoints_2d,
        poses_3d,
        skeleton.parents,
        skeleton.joints_left,
        skeleton.joints_right,
        image_size=image_size,
    )
    try:
        rows = [
            figure.draw(f, f"frame {int(frame_indices[f])}", backgrounds.get(int(frame_indices[f])))
            for f in chosen
        ]
    finally:
        figure.close()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(out_path, np.concatenate(rows, axis=0))
    return out_path


def plot_training_curves(
    scalars_path: str | Path,
    out_path: str | Path,
    keys: Sequence[str] = ("train/loss_mm", "val/mpjpe_mm"),
) -> Path:
    """Plot scalars from a run's ``scalars.jsonl`` (one panel per key) against the step."""
    scalars_path = Path(scalars_path)
    if scalars_path.is_dir():
        scalars_path = scalars_path / "scalars.jsonl"
    records = [json.loads(line) for line in scalars_path.read_text().splitlines() if line.strip()]
    present = [key for key in keys if any(key in record for record in records)]
    if not present:
        raise RenderError(f"{scalars_path} holds none of the scalars {list(keys)}")
    figure, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 3.5), squeeze=False)
    for axis, key in zip(axes[0], present, strict=True):
        steps = [r["step"] for r in records if key in r]
        values = [r[key] for r in records if key in r]
        axis.plot(steps, values, marker="o", ms=3)
        axis.set_title(key)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=100)
    plt.close(figure)
    return out_path
