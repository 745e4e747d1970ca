"""``python -m landseg.export``: the command line is :mod:`landseg.cli.export`; the library is :mod:`landseg.export`."""

if __name__ == "__main__":
    from landseg.cli.export import run

    run()
