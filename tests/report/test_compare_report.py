"""experiments/compare.py writes one landseg.report page per comparison and links it from the tables."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _compare_module():
    spec = importlib.util.spec_from_file_location("compare_script_report", ROOT / "experiments" / "compare.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_compare_writes_the_seed_comparison_page(tiny_runs, tmp_path, monkeypatch):
    cmp = _compare_module()
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "experiments" / "compare", root / "experiments" / "compare")
    monkeypatch.setattr(cmp, "ROOT", root)
    key, title, rows, _ = next(c for c in cmp.COMPARISONS if c[0] == "seed")
    page, cmd = cmp.write_report_page(key, title, rows)
    assert page is None and "python -m landseg.report" in cmd  # no runs yet: no page, but the command
    # the two arms' runs where compare.py puts them (tiny stand-ins, finished)
    for arm, src in (("cmp-cse_unet", "run-alpha"), ("cmp-cse_unet_seed1", "run-beta")):
        shutil.copytree(tiny_runs[src], root / cmp.RUNS / arm)
        assert json.loads((root / cmp.RUNS / arm / "state.json").read_text())["finished"]
    page, cmd = cmp.write_report_page(key, title, rows)
    assert page == cmp.REPORTS / "seed.html"
    text = (root / page).read_text()
    assert "cmp-cse_unet_seed1" in text and "cmp-cse_unet" in text and f"<title>{title}</title>" in text
    assert "--evals experiments/runs/compare/eval" in cmd
