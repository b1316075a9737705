"""Evaluate a checkpoint: `python evaluate.py checkpoint=PATH [+experiment=NAME data.root=DIR]`."""

from omegaconf import DictConfig

from trilab import entry


@entry.main(config_path="configs", config_name="config", program="evaluate.py")
def main(cfg: DictConfig) -> None:
    from glagcn.evaluate import evaluate

    evaluate(cfg)


if __name__ == "__main__":
    main()
