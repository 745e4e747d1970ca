"""``python -m landseg.evaluate``: the command line is :mod:`landseg.cli.evaluate`; the library is elsewhere (see landseg/docs/architecture.md)."""

if __name__ == "__main__":
    from landseg.cli.evaluate import run

    run()
