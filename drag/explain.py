"""python explain.py images=DIR_OR_FILE checkpoint=PATH -> PNG of region maps + adjacency."""

import hydra


@hydra.main(version_base="1.3", config_path="configs", config_name="explain")
def main(cfg) -> None:
    from drag.explain import run
    from trilab.errors import report_user_errors

    report_user_errors(lambda: run(cfg), program="explain.py")


if __name__ == "__main__":
    main()
