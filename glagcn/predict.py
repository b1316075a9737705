"""Lift a 2D keypoint file to 3D: `python predict.py input=K.json checkpoint=C.pt output=DIR
image_width=W image_height=H [render=true video=V.mp4]`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    from glagcn.predict import predict

    predict(cfg)


if __name__ == "__main__":
    main()
