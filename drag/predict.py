"""python predict.py images=DIR checkpoint=PATH [out=preds.csv] -> CSV path,p_private,label."""

import hydra

from drag.predict import run


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
