"""Offline channel clustering only (the `cluster` stage), e.g.
python cluster_channels.py hydra.run.dir=outputs/ipd_p1 groups=4"""

import hydra

from drag.pipeline import run


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg) -> None:
    cfg.stages = ["cluster"]
    run(cfg)


if __name__ == "__main__":
    main()
