"""``python -m landseg.train``: the command line is :mod:`landseg.cli.train`; the library is elsewhere (see landseg/docs/architecture.md)."""

if __name__ == "__main__":
    from landseg.cli.train import run

    run()
