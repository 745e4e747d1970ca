"""``python -m landseg.lr_find``: the command line is :mod:`landseg.cli.lr_find`; the library is elsewhere (see landseg/docs/architecture.md)."""

if __name__ == "__main__":
    from landseg.cli.lr_find import run

    run()
