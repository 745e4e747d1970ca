"""``python -m landseg.pseudolabel``: the command line is :mod:`landseg.cli.pseudolabel`; the library is elsewhere (see landseg/docs/architecture.md)."""

if __name__ == "__main__":
    from landseg.cli.pseudolabel import run

    run()
