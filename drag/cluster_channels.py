"""Offline channel clustering only (the `cluster` stage), e.g.
python cluster_channels.py hydra.run.dir=outputs/ipd_p1 groups=4"""

from trilab import entry


@entry.main(config_path="configs", config_name="config", program="cluster_channels.py")
def main(cfg) -> None:
    from drag.training import train

    cfg.stages = ["cluster"]
    train(cfg)


if __name__ == "__main__":
    main()
