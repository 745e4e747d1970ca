"""``python -m landseg.report``: the command line is :mod:`landseg.cli.report`; the library is this package."""

if __name__ == "__main__":
    from landseg.cli.report import run

    run()
