"""The report page from two real tiny runs: contents, self-containment, the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from landseg.report import ReportError, config_differences, external_references, load_runs, write_report
from landseg.report.html import strip_plotlyjs


class _Tables(HTMLParser):
    """Tables by id: rows of (cell text, cell classes)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or f"t{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ["", a.get("class") or ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append((self._cell[0].strip(), self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


@pytest.fixture(scope="module")
def page(report_file) -> str:
    return report_file.read_text()


def test_page_names_both_runs_and_their_settings(page, tiny_runs):
    for name in ("run-alpha", "run-beta"):
        assert name in page
    tables = _Tables()
    tables.feed(strip_plotlyjs(page))
    runs = [t for t in tables.tables.values() if t and t[0] and t[0][0][0] == "run"][0]
    header = [c for c, _ in runs[0]]
    # only the one config key that differs (the seed) is a column; paths and names are not
    assert "run.seed" in header and not any(h.startswith("data.") or h == "run.name" for h in header)
    assert header[1:3] == ["model", "encoder / weights"]
    alpha, beta = runs[1], runs[2]
    assert alpha[0][0].startswith("run-alpha") and beta[0][0].startswith("run-beta")
    assert alpha[1][0] == "tiny_test_net"
    assert alpha[header.index("run.seed")][0] == "0" and beta[header.index("run.seed")][0] == "1"
    assert alpha[header.index("epochs")][0] == "2 of 2"
    # wall and CPU time as the runs recorded them in state.json
    state = json.loads((tiny_runs["run-alpha"] / "state.json").read_text())
    assert state["wall_seconds"] > 0 and state["cpu_seconds"] > 0
    assert alpha[header.index("wall time")][0] == f"{state['wall_seconds']:.0f} s"
    assert alpha[header.index("CPU time")][0].endswith((" s", " min"))
    # held-out figures of run-alpha's evaluation; run-beta was not evaluated
    metrics = json.loads((tiny_runs["run-alpha"] / "eval_synthetic_val" / "metrics.json").read_text())
    assert alpha[header.index("held-out mIoU")][0] == f"{metrics['miou']:.4f}"
    assert "not evaluated" in [c for c, _ in beta]


def test_per_class_table_marks_the_best_run_per_class(page, tiny_runs):
    tables = _Tables()
    tables.feed(strip_plotlyjs(page))
    rows = tables.tables["per-class-val"]
    assert [c for c, _ in rows[0]] == ["class", "run-alpha", "run-beta"]
    iou = {name: {r["class"]: r["iou"] for r in json.loads((tiny_runs[name] / "per_class_iou.json").read_text())["classes"]}
           for name in ("run-alpha", "run-beta")}
    classes = [r[0][0] for r in rows[1:-1]]
    assert classes == list(iou["run-alpha"])  # the synthetic classes, in class-map order
    for row in rows[1:-1]:
        cls = row[0][0]
        a, b = iou["run-alpha"][cls], iou["run-beta"][cls]
        assert row[1][0] == ("–" if a is None else f"{a:.4f}") and row[2][0] == ("–" if b is None else f"{b:.4f}")
        marked = {i for i, (_, css) in enumerate(row[1:]) if "best" in css}
        if a is not None and b is not None:
            assert marked == ({0} if a > b + 5e-5 else {1} if b > a + 5e-5 else {0, 1}), (cls, a, b, marked)
    assert rows[-1][0][0] == "mean IoU"
    # the held-out table holds the evaluated run only
    assert [c for c, _ in tables.tables["per-class-eval-0"][0]][1].startswith("run-alpha")


def test_page_loads_nothing_from_the_network(page):
    """No external resource references: outside the inlined plotly.js bundle there is no http(s)://
    string at all, no src/href/srcset/action/data attribute to http(s):// or //host, no CSS url(http...)
    and no @import; no <script src> or <link> anywhere (the bundle is one inline <script>), pictures are
    data: URIs. plotly.js's own source holds URL strings (licence comments, map-tile servers for map
    traces the page does not draw) inside JavaScript, which load nothing by themselves; the browser
    test opens the page with every host unresolvable and still sees the plots."""
    assert external_references(page) == []
    rest = strip_plotlyjs(page)
    assert not re.search(r"https?://", rest)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link\b", rest, re.I)
    assert not re.search(r"<(?:iframe|object|embed)\b", rest, re.I)
    assert len(page) - len(rest) > 1_000_000  # plotly.js is inlined (some MB), not fetched
    imgs = re.findall(r"<img [^>]*src=\"([^\"]{0,30})", rest)
    assert len(imgs) >= 4 and all(s.startswith("data:image/png;base64,") for s in imgs)
    # the check itself finds what it should
    assert external_references('<img src="https://example.org/x.png">')
    assert external_references('<style>@import url(http://e.org/a.css)</style>')
    assert external_references('<script src="//cdn.example.org/plotly.js"></script>')


def test_page_has_plotly_curves_for_both_runs(page):
    rest = strip_plotlyjs(page)
    assert 'id="curves-plot"' in rest and "Plotly.newPlot" in rest
    for name in ("run-alpha train", "run-alpha validation", "run-beta train", "run-beta validation"):
        assert f'"name":"{name}"' in rest


def test_config_differences_and_labels(tiny_runs):
    runs = load_runs([tiny_runs["run-alpha"], tiny_runs["run-beta"]])
    assert [k for k, _ in config_differences(runs)] == ["run.seed"]
    assert config_differences(runs[:1]) == []
    assert [e.dataset for e in runs[0].evals] == ["synthetic"] and runs[1].evals == []
    assert runs[0].best_val_miou is not None and runs[0].epochs_completed == 2


def test_eval_found_through_its_model_path(tiny_runs, tmp_path):
    """An evaluate output elsewhere (--output) counts for the run whose model its metrics.json names;
    an ensemble's evaluation (several models in settings.ensemble) counts for none of them."""
    import shutil

    moved = tmp_path / "evals" / "alpha_val"
    shutil.copytree(tiny_runs["run-alpha"] / "eval_synthetic_val", moved)
    ens = tmp_path / "evals" / "deeper" / "ensemble"
    shutil.copytree(moved, ens)
    m = json.loads((ens / "metrics.json").read_text())
    m["settings"]["ensemble"] = [str(tiny_runs["run-alpha"] / "best.keras"), str(tiny_runs["run-beta"] / "best.keras")]
    (ens / "metrics.json").write_text(json.dumps(m))
    runs = load_runs([tiny_runs["run-beta"], tiny_runs["run-alpha"]], eval_dirs=[tmp_path / "evals"])
    assert runs[0].evals == []
    assert {e.folder for e in runs[1].evals} == {moved, tiny_runs["run-alpha"] / "eval_synthetic_val"}


def test_not_a_run_folder_is_an_error(tiny_runs, tmp_path):
    with pytest.raises(ReportError, match="not a training run folder"):
        write_report([tiny_runs["run-alpha"], tmp_path], tmp_path / "r.html")
    with pytest.raises(ReportError, match="twice"):
        load_runs([tiny_runs["run-alpha"], tiny_runs["run-alpha"]])


def test_command_line(tiny_runs, tmp_path):
    out = tmp_path / "sub" / "r.html"
    cmd = [sys.executable, "-m", "landseg.report", str(tiny_runs["run-alpha"]), str(tiny_runs["run-beta"]),
           "--output", str(out), "--title", "seed check"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and out.is_file()
    assert "<title>seed check</title>" in out.read_text()
    # the same as a subcommand of the landseg console command
    from landseg.cli.main import main as landseg_main

    out2 = tmp_path / "r2.html"
    assert landseg_main(["report", str(tiny_runs["run-alpha"]), str(tiny_runs["run-beta"]), "-o", str(out2)]) == 0
    assert "run-beta" in out2.read_text()
    bad = subprocess.run([sys.executable, "-m", "landseg.report", str(tmp_path), "--output", str(tmp_path / "x.html")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error:" in bad.stderr and not (tmp_path / "x.html").exists()


def test_helpers_without_runs():
    from landseg.report.collect import best_indices, unique_labels

    assert best_indices([0.5, None, 0.7, 0.69999]) == {2, 3}
    assert best_indices([0.5, None]) == set() and best_indices([None, float("nan")]) == set()
    assert unique_labels([Path("/r/a/x/run"), Path("/r/b/x/run"), Path("/r/c/other")]) == ["a/x/run", "b/x/run", "r/c/other"]
    assert unique_labels([Path("/r/one"), Path("/r/two")]) == ["one", "two"]


def test_eval_metrics_in_the_summarize_layout(tmp_path):
    """metrics.json with landseg.metrics.summarize's keys (mean_iou, per_class as a list) reads too."""
    from landseg.report.collect import read_eval

    (tmp_path / "metrics.json").write_text(json.dumps({
        "model": "/x/best.keras", "dataset": "dubai", "split": "val", "images": 3, "mean_iou": 0.5,
        "pixel_accuracy": 0.8, "per_class": [{"name": "water", "iou": 0.7}, {"name": "road", "iou": None}]}))
    ev = read_eval(tmp_path)
    assert ev.miou == 0.5 and ev.per_class_iou == {"water": 0.7, "road": None} and ev.label == "dubai val (3 scenes)"
