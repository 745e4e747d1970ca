"""``python -m landseg.data``: the command line is :mod:`landseg.cli.data`."""

if __name__ == "__main__":
    from landseg.cli.data import run

    run()
