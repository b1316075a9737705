"""python explain.py images=DIR_OR_FILE checkpoint=PATH -> PNG of region maps + adjacency."""

import hydra

from drag.explain import run


@hydra.main(version_base="1.3", config_path="configs", config_name="explain")
def main(cfg) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
