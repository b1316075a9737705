"""Train DRAG: runs the stages listed in `stages` (default: the whole recipe) in order."""

import hydra

from drag.pipeline import run


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
