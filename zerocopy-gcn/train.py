"""Train a GNN with the chosen feature-fetch mode: python train.py fetch=zerocopy ..."""

import hydra
from omegaconf import DictConfig

from zerocopy_gcn.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
