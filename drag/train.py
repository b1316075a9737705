"""Train DRAG: runs the stages listed in `stages` (default: the whole recipe) in order."""

import hydra


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg) -> None:
    from drag.training import train
    from trilab.errors import report_user_errors

    report_user_errors(lambda: train(cfg), program="train.py")


if __name__ == "__main__":
    main()
