"""Train a GNN with the chosen feature-fetch mode: python train.py fetch=zerocopy ..."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from trilab.errors import report_user_errors
    from zerocopy_gcn.training import train

    report_user_errors(lambda: train(cfg), program="train.py")


if __name__ == "__main__":
    main()
