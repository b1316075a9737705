"""Train a GNN with the chosen feature-fetch mode: python train.py fetch=zerocopy ..."""

from omegaconf import DictConfig

from trilab import entry


@entry.main(config_path="configs", config_name="config", program="train.py")
def main(cfg: DictConfig) -> None:
    from zerocopy_gcn.training import train

    train(cfg)


if __name__ == "__main__":
    main()
