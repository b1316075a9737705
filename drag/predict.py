"""python predict.py images=DIR checkpoint=PATH [out=preds.csv] -> CSV path,p_private,label."""

from trilab import entry


@entry.main(config_path="configs", config_name="predict", program="predict.py")
def main(cfg) -> None:
    from drag.predict import run

    run(cfg)


if __name__ == "__main__":
    main()
