"""Offline channel clustering only (the `cluster` stage), e.g.
python cluster_channels.py hydra.run.dir=outputs/ipd_p1 groups=4"""

import hydra


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg) -> None:
    from drag.training import train
    from trilab.errors import report_user_errors

    cfg.stages = ["cluster"]
    report_user_errors(lambda: train(cfg), program="cluster_channels.py")


if __name__ == "__main__":
    main()
