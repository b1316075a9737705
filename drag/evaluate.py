"""Evaluate a DRAG (or backbone) checkpoint on the configured val/test splits:
python evaluate.py checkpoint=outputs/demo/drag/checkpoints/best.pt [data=...]"""

import hydra

from drag.evaluate import run


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
