"""Compare training runs in one self-contained HTML page (``python -m landseg.report RUN [RUN ...]``).

:mod:`landseg.report.collect` reads run folders (config, state, history, per-class IoU, pictures,
``landseg.evaluate`` outputs); :mod:`landseg.report.html` renders the page with Plotly curves and
inline pictures. The command line is :mod:`landseg.cli.report`.
"""

from landseg.report.collect import (EvalResult, ReportError, RunData, config_differences, find_evals, load_runs,
                                    read_run_data)
from landseg.report.html import external_references, render_report, write_report

__all__ = ["EvalResult", "ReportError", "RunData", "config_differences", "find_evals", "read_run_data", "load_runs",
           "external_references", "render_report", "write_report"]
