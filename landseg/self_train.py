"""``python -m landseg.self_train``: the command line is :mod:`landseg.cli.self_train`; the library is elsewhere (see landseg/docs/architecture.md)."""

if __name__ == "__main__":
    from landseg.cli.self_train import run

    run()
