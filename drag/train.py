"""Train DRAG: runs the stages listed in `stages` (default: the whole recipe) in order."""

from trilab import entry


@entry.main(config_path="configs", config_name="config", program="train.py")
def main(cfg) -> None:
    from drag.training import train

    train(cfg)


if __name__ == "__main__":
    main()
