"""python predict.py images=DIR checkpoint=PATH [out=preds.csv] -> CSV path,p_private,label."""

import hydra


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg) -> None:
    from drag.predict import run
    from trilab.errors import report_user_errors

    report_user_errors(lambda: run(cfg), program="predict.py")


if __name__ == "__main__":
    main()
