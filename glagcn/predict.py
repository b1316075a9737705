"""Lift 2D keypoints to 3D: `python predict.py input=KEYPOINTS checkpoint=CKPT [video=V.mp4]`,
or `python predict.py video=V.mp4 checkpoint=CKPT` to detect people first
(options: configs/predict.yaml)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    from glagcn.predict import predict
    from trilab.errors import report_user_errors

    report_user_errors(lambda: predict(cfg), program="predict.py")


if __name__ == "__main__":
    main()
