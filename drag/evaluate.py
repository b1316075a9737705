"""Evaluate a DRAG (or backbone) checkpoint on the configured val/test splits:
python evaluate.py checkpoint=outputs/demo/drag/checkpoints/best.pt [data=...]"""

from trilab import entry


@entry.main(config_path="configs", config_name="config", program="evaluate.py")
def main(cfg) -> None:
    from drag.evaluate import run

    run(cfg)


if __name__ == "__main__":
    main()
