"""python explain.py images=DIR_OR_FILE checkpoint=PATH -> PNG of region maps + adjacency."""

from trilab import entry


@entry.main(config_path="configs", config_name="explain", program="explain.py")
def main(cfg) -> None:
    from drag.explain import run

    run(cfg)


if __name__ == "__main__":
    main()
