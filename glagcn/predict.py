"""Lift 2D keypoints to 3D: `python predict.py input=KEYPOINTS checkpoint=CKPT [video=V.mp4]`,
or `python predict.py video=V.mp4 checkpoint=CKPT` to detect people first
(options: configs/predict.yaml)."""

from omegaconf import DictConfig

from trilab import entry


@entry.main(config_path="configs", config_name="predict", program="predict.py")
def main(cfg: DictConfig) -> None:
    from glagcn.predict import predict

    predict(cfg)


if __name__ == "__main__":
    main()
