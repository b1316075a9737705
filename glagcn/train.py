"""Train GLA-GCN: `python train.py [+experiment=h36m_gt_243] [key=value ...]`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from glagcn.training import train
    from trilab.errors import report_user_errors

    report_user_errors(lambda: train(cfg), program="train.py")


if __name__ == "__main__":
    main()
