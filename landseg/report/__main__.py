"""``python -m landseg.report``: the command lives in :mod:`landseg.cli.report`."""

import sys

from landseg.cli.report import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m landseg.report"))
