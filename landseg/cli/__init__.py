"""Command lines: each stage is a thin shell over its library (parse arguments, call the library,
turn its results and errors into messages and exit codes). Only this package prints for the user
or exits. ``landseg <stage> ...`` (:mod:`landseg.cli.main`) and ``python -m landseg.<stage> ...``
reach the same ``main(argv) -> exit code`` of each module here."""
