"""Evaluate a checkpoint: `python evaluate.py checkpoint=PATH [+experiment=NAME data.root=DIR]`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from glagcn.training import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
