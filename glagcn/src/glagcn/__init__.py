"""GLA-GCN: global-local adaptive graph convolution for lifting 2D keypoints to 3D poses."""

__version__ = "0.1.0"
