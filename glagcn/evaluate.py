"""Evaluate a checkpoint: `python evaluate.py checkpoint=PATH [+experiment=NAME data.root=DIR]`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from glagcn.evaluate import evaluate
    from trilab.errors import report_user_errors

    report_user_errors(lambda: evaluate(cfg), program="evaluate.py")


if __name__ == "__main__":
    main()
