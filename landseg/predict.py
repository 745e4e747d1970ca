"""``python -m landseg.predict``: the command line is :mod:`landseg.cli.predict`; the library is elsewhere (see landseg/docs/architecture.md)."""

if __name__ == "__main__":
    from landseg.cli.predict import run

    run()
