"""Train GLA-GCN: `python train.py [+experiment=h36m_gt_243] [key=value ...]`."""

from omegaconf import DictConfig

from trilab import entry


@entry.main(config_path="configs", config_name="config", program="train.py")
def main(cfg: DictConfig) -> None:
    from glagcn.training import train

    train(cfg)


if __name__ == "__main__":
    main()
