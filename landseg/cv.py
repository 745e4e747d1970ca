"""``python -m landseg.cv``: the command line is :mod:`landseg.cli.cv`; the library is :mod:`landseg.training.cv`."""

if __name__ == "__main__":
    from landseg.cli.cv import run

    run()
