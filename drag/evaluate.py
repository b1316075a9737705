"""Evaluate a DRAG (or backbone) checkpoint on the configured val/test splits:
python evaluate.py checkpoint=outputs/demo/drag/checkpoints/best.pt [data=...]"""

import hydra


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg) -> None:
    from drag.evaluate import run
    from trilab.errors import report_user_errors

    report_user_errors(lambda: run(cfg), program="evaluate.py")


if __name__ == "__main__":
    main()
