"""One self-contained HTML page comparing runs: table, per-class IoU, Plotly curves, pictures.

Self-contained means the page loads nothing: plotly.js is inlined once as a ``<script>``
(``plotly.offline.get_plotlyjs()``, the same bundle ``include_plotlyjs=True`` writes), styles are
an inline ``<style>``, and pictures are ``data:image/png;base64`` URIs. plotly.js itself contains
URL strings (licence comments, map-tile servers and the topojson CDN used only by geo/map traces,
which this page does not draw); nothing else on the page does (see :func:`external_references`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Sequence

from landseg.runs import RunFolder
from landseg.report.collect import (EvalResult, ReportError, RunData, best_indices, class_union, config_differences,
                                    load_runs, same_preview_scenes)

# Okabe-Ito: distinguishable for colour-blind readers; cycles for more runs.
RUN_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
PLOTLYJS_ID = "plotlyjs-inline"

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.0em; margin: .6em 0 .3em; }
.meta { color: #666; font-size: .85em; } .note { color: #555; font-size: .85em; max-width: 75em; }
table { border-collapse: collapse; font-size: .88em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #c8ecc8; font-weight: bold; }
.swatch { display: inline-block; width: .9em; height: .9em; border: 1px solid #555; margin-right: .4em; vertical-align: -.1em; }
.runname { font-weight: bold; } .key { font-family: monospace; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.card { border: 1px solid #ddd; padding: .5em; border-radius: 4px; background: #fff; }
.card img { display: block; max-width: 100%; height: auto; }
.panels .card img { width: 420px; } .cms .card img { width: 380px; }
.missing { color: #999; font-style: italic; }
.plot { width: 100%; min-width: 700px; }
"""


def esc(v) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _fmt_value(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _seconds(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f} s" if v < 120 else f"{v / 60:.1f} min"


def png_data_uri(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _img(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return f'<p class="missing">no {esc(alt)}</p>'
    return f'<img alt="{esc(alt)}" src="{png_data_uri(path)}">'


def _run_header(r: RunData, colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span><span class="runname">{esc(r.label)}</span>'


# ---------------------------------------------------------------------- sections
def runs_table(runs: Sequence[RunData], colours: Sequence[str]) -> str:
    diffs = config_differences(runs)
    any_eval = any(r.evals for r in runs)
    head = ["run", "model", "encoder / weights"] + [f'<span class="key">{esc(k)}</span>' for k, _ in diffs] + [
        "epochs", "wall time", "CPU time", "best val mIoU (epoch)", "val mIoU, best model"]
    if any_eval:
        head += ["held-out mIoU", "held-out pixel acc.", "held-out set"]
    rows = []
    best_val = best_indices([r.best_val_miou for r in runs])
    for i, r in enumerate(runs):
        enc = r.encoder
        enc_text = "–" if enc is None and r.encoder_weights is None else f"{enc or '–'} / {r.encoder_weights or '–'}"
        epochs = f"{r.epochs_completed}" + (f" of {r.epochs_planned}" if r.epochs_planned is not None else "")
        if r.state.get("early_stopped"):
            epochs += f" (early stop at {r.state['early_stopped']})"
        elif not r.finished:
            epochs += " (unfinished)"
        wall = _seconds(r.wall_seconds) + (" ≈" if r.timing_source == "file times" and r.wall_seconds is not None else "")
        best = _fmt(r.best_val_miou) + (f" ({r.best_epoch})" if r.best_epoch is not None else "")
        cells = [f'<td>{_run_header(r, colours[i])}<br><span class="meta">{esc(r.path)}</span></td>',
                 f"<td>{esc(r.model_name)}</td>", f"<td>{esc(enc_text)}</td>"]
        cells += [f'<td class="key">{esc(_fmt_value(values[i]))}</td>' for _, values in diffs]
        cells += [f'<td class="num">{esc(epochs)}</td>', f'<td class="num">{esc(wall)}</td>',
                  f'<td class="num">{esc(_seconds(r.cpu_seconds))}</td>',
                  f'<td class="num{" best" if i in best_val else ""}">{esc(best)}</td>',
                  f'<td class="num">{esc(_fmt(r.val_miou_best_model))}</td>']
        if any_eval:
            if r.evals:
                cells += ['<td class="num">' + "<br>".join(esc(_fmt(e.miou)) for e in r.evals) + "</td>",
                          '<td class="num">' + "<br>".join(esc(_fmt(e.pixel_accuracy)) for e in r.evals) + "</td>",
                          "<td>" + "<br>".join(esc(e.label) for e in r.evals) + "</td>"]
            else:
                cells += ['<td class="missing" colspan="3">not evaluated</td>']
        rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = []
    if len(runs) > 1:
        notes.append(f"Config columns: the {len(diffs)} key(s) whose values differ between the runs "
                     "(run name and output folders left out)." if diffs else
                     "The runs' configs are identical apart from run name and output folders.")
    if any(r.timing_source == "file times" for r in runs):
        notes.append("≈ wall time: from the run's file times (config written → last file written), as the run "
                     "did not record its time (trained before landseg recorded it); it leaves out data preparation "
                     "and includes pauses of a resumed run.")
    if any(r.timing_source == "recorded" for r in runs):
        notes.append(f"Wall and CPU time recorded by the run ({RunFolder.STATE}): its epochs (training, validation, "
                     "checkpoints) summed over resumes, without data preparation, model building and final reports; "
                     "CPU time counts every thread of the process, so it exceeds wall time on several cores.")
    if not all(r.cpu_seconds is not None for r in runs):
        notes.append("CPU time –: not recorded (runs trained before landseg recorded it).")
    notes.append(f"best val mIoU: the epoch-end validation score that chose {RunFolder.BEST}; val mIoU, best model: "
                 f"{RunFolder.BEST} re-scored on the whole validation set after training ({RunFolder.PER_CLASS}.json).")
    if any_eval:
        notes.append("Held-out figures: python -m landseg.evaluate on whole scenes (metrics.json); mIoU leaves out "
                     "classes absent from target and prediction.")
    return ("<h2 id='runs'>Runs</h2><table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            + "".join(f'<p class="note">{esc(n)}</p>' for n in notes))


def _class_cell(name: str, palette: dict[str, str]) -> str:
    c = palette.get(name)
    sw = f'<span class="swatch" style="background:{esc(c)}"></span>' if c else ""
    return f"<td>{sw}{esc(name)}</td>"


def _iou_table(table_id: str, columns: list[str], classes: list[str], values: list[list[float | None]],
               means: list[float | None], palette: dict[str, str]) -> str:
    """values[c][k]: IoU of class c in column k. The best per class (and mean) is highlighted."""
    out = [f'<table id="{table_id}" class="per-class-iou"><thead><tr><th>class</th>'
           + "".join(f"<th>{c}</th>" for c in columns) + "</tr></thead><tbody>"]
    for name, row in zip(classes, values):
        best = best_indices(row)
        out.append("<tr>" + _class_cell(name, palette) + "".join(
            f'<td class="num{" best" if k in best else ""}">{esc(_fmt(v))}</td>' for k, v in enumerate(row)) + "</tr>")
    best = best_indices(means)
    out.append("<tr><td><b>mean IoU</b></td>" + "".join(
        f'<td class="num{" best" if k in best else ""}"><b>{esc(_fmt(v))}</b></td>' for k, v in enumerate(means))
               + "</tr></tbody></table>")
    return "".join(out)


def per_class_section(runs: Sequence[RunData], colours: Sequence[str]) -> str:
    classes = class_union(runs)
    palette: dict[str, str] = {}
    for r in runs:
        palette = {**r.palette, **palette}
    parts = ["<h2 id='per-class'>Per-class IoU</h2>"]
    if not classes:
        return parts[0] + '<p class="missing">no run has per-class scores yet (per_class_iou.json is written when training ends)</p>'
    cols = [_run_header(r, colours[i]) + ("" if r.per_class else '<br><span class="meta">not scored yet</span>')
            for i, r in enumerate(runs)]
    vals = [[r.val_per_class_iou.get(c) for r in runs] for c in classes]
    parts.append("<h3>Validation (best model of each run, per_class_iou.json)</h3>")
    parts.append(_iou_table("per-class-val", cols, classes, vals, [r.val_miou_best_model for r in runs], palette))
    evals = [(i, r, e) for i, r in enumerate(runs) for e in r.evals]
    if evals:
        # one table per evaluated set, so only scores on the same scenes stand side by side
        sets: dict[str, list[tuple[int, RunData, EvalResult]]] = {}
        for i, r, e in evals:
            sets.setdefault(f"{e.dataset} {e.split}", []).append((i, r, e))
        for n, (set_name, items) in enumerate(sets.items()):
            parts.append(f"<h3>Held-out evaluation: {esc(set_name)} (whole scenes, landseg.evaluate)</h3>")
            cols = [_run_header(r, colours[i]) + f'<br><span class="meta">{esc(e.label)}</span>' for i, r, e in items]
            vals = [[e.per_class_iou.get(c) for _, _, e in items] for c in classes]
            parts.append(_iou_table(f"per-class-eval-{n}", cols, classes, vals, [e.miou for _, _, e in items], palette))
    parts.append('<p class="note">Green: the highest IoU of the row (ties within 0.0001 all marked; nothing is marked '
                 "where fewer than two runs have a score). – : the class is absent from the scored pixels (no target "
                 "and no prediction), or the run has no scores (an unfinished run writes per_class_iou.json at its "
                 "end).</p>")
    parts.append(_figure_html(per_class_figure(runs, colours, classes), "per-class-plot", 380))
    return "".join(parts)


# ---------------------------------------------------------------------- Plotly figures
def _epochs(r: RunData) -> list[float]:
    n = max((len(v) for v in r.history.values()), default=0)
    e = r.history.get("epoch")
    if e and len(e) == n and all(math.isfinite(x) for x in e):
        return [x + 1 for x in e] if min(e) == 0 else list(e)
    return list(range(1, n + 1))


def _clean(values: list[float]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values]


def curves_figure(runs: Sequence[RunData], colours: Sequence[str]):
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "mean IoU"), horizontal_spacing=0.08)
    for i, r in enumerate(runs):
        x = _epochs(r)
        shown = False
        for col, key in ((1, "loss"), (2, "miou")):
            for k, dash, split in ((key, "solid", "train"), (f"val_{key}", "dash", "validation")):
                y = r.history.get(k)
                if not y or not any(v is not None and math.isfinite(v) for v in y):
                    continue
                fig.add_trace(go.Scatter(
                    x=x[: len(y)], y=_clean(y), mode="lines+markers", name=f"{r.label} {split}",
                    legendgroup=r.label, legendgrouptitle_text=r.label if not shown else None,
                    line=dict(color=colours[i], dash=dash), marker=dict(size=5),
                    hovertemplate=f"{esc(r.label)} {split} {key}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>",
                    showlegend=col == 1 or key not in r.history), row=1, col=col)
                shown = True
    fig.update_xaxes(title_text="epoch", dtick=1 if max((len(_epochs(r)) for r in runs), default=0) <= 20 else None)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="mIoU", row=1, col=2)
    fig.update_layout(height=440, margin=dict(l=60, r=20, t=40, b=50), template="plotly_white",
                      legend=dict(groupclick="togglegroup"), hovermode="closest")
    return fig


def per_class_figure(runs: Sequence[RunData], colours: Sequence[str], classes: list[str]):
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, r in enumerate(runs):
        iou = r.val_per_class_iou
        fig.add_trace(go.Bar(x=classes, y=[iou.get(c) for c in classes], name=r.label, marker_color=colours[i],
                             hovertemplate=f"{esc(r.label)}<br>%{{x}}: %{{y:.4f}}<extra></extra>"))
    fig.update_layout(barmode="group", height=360, template="plotly_white", yaxis=dict(title="validation IoU", range=[0, 1]),
                      margin=dict(l=60, r=20, t=30, b=60), title=dict(text="validation IoU per class", x=0.01))
    return fig


def _figure_html(fig, div_id: str, height: int) -> str:
    return ('<div class="plot">' + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                               default_height=f"{height}px", default_width="100%",
                                               config={"displaylogo": False, "responsive": True,
                                                       "showSendToCloud": False})
            + "</div>")


def curves_section(runs: Sequence[RunData], colours: Sequence[str]) -> str:
    if not any(r.history for r in runs):
        return "<h2 id='curves'>Learning curves</h2><p class='missing'>no run has a history yet</p>"
    return ("<h2 id='curves'>Learning curves</h2>"
            '<p class="note">Solid: training (running mean over the epoch), dashed: validation at epoch end. Click a run '
            "in the legend to hide it, drag to zoom, double-click to reset.</p>"
            + _figure_html(curves_figure(runs, colours), "curves-plot", 460))


def pictures_section(runs: Sequence[RunData], colours: Sequence[str]) -> str:
    parts = ["<h2 id='confusion'>Confusion matrices</h2>",
             '<p class="note">Rows: true class, normalised to recall; validation crops, best model of each run; '
             "held-out whole scenes where evaluated.</p><div class='cards cms'>"]
    for i, r in enumerate(runs):
        parts.append(f'<div class="card"><h3>{_run_header(r, colours[i])}: validation</h3>'
                     + _img(r.images.get("confusion_matrix"), "confusion matrix") + "</div>")
        for e in r.evals:
            if e.confusion_png is not None:
                parts.append(f'<div class="card"><h3>{_run_header(r, colours[i])}: {esc(e.label)}</h3>'
                             + _img(e.confusion_png, "confusion matrix") + "</div>")
    parts.append("</div>")
    same = same_preview_scenes(runs)
    parts.append("<h2 id='panels'>Validation scenes: image / target / prediction</h2>")
    parts.append('<p class="note">' + esc(
        "The first validation crops of each run, masks in the dataset palette (legend under each picture). "
        + ("All runs share data, split and crop settings, so these are the same scenes."
           if same else "The runs differ in data, split or crop settings, so their scenes may differ.")) + "</p>")
    parts.append("<div class='cards panels'>")
    for i, r in enumerate(runs):
        parts.append(f'<div class="card"><h3>{_run_header(r, colours[i])}</h3>'
                     + _img(r.images.get("predictions"), "prediction panels") + "</div>")
    parts.append("</div>")
    held = [(i, r, e) for i, r in enumerate(runs) for e in r.evals if e.panels]
    if held:
        parts.append("<h2 id='eval-panels'>Held-out scenes (best and worst by mIoU)</h2><div class='cards panels'>")
        for i, r, e in held:
            for kind, p in e.panels.items():
                parts.append(f'<div class="card"><h3>{_run_header(r, colours[i])}: {esc(e.label)}, {kind}</h3>'
                             + _img(p, f"{kind} panels") + "</div>")
        parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------------- page
def render_report(runs: Sequence[RunData], title: str | None = None) -> str:
    """The whole page as a string (plotly.js inlined)."""
    from plotly.offline import get_plotlyjs

    if not runs:
        raise ReportError("no runs to report")
    colours = [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(len(runs))]
    title = title or "landseg runs: " + ", ".join(r.label for r in runs)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = [f"<h1>{esc(title)}</h1>",
            f'<p class="meta">{len(runs)} run(s), written {esc(stamp)} by python -m landseg.report. '
            "Sections: <a href='#runs'>runs</a> · <a href='#per-class'>per-class IoU</a> · "
            "<a href='#curves'>learning curves</a> · <a href='#confusion'>confusion matrices</a> · "
            "<a href='#panels'>scenes</a></p>",
            runs_table(runs, colours), per_class_section(runs, colours), curves_section(runs, colours),
            pictures_section(runs, colours)]
    js = get_plotlyjs()
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript" id="{PLOTLYJS_ID}">{js}</script></head><body>'
            + "\n".join(body) + "</body></html>\n")


def write_report(run_dirs: Sequence[str | os.PathLike], output: str | os.PathLike,
                 eval_dirs: Sequence[str | os.PathLike] = (), title: str | None = None) -> Path:
    """Read the run folders and write the page to ``output`` atomically; returns its path."""
    from landseg.io_utils import write_text
    from landseg.output_folders import claim_file

    claim_file(output, "report")  # never over a file the report did not write (a run's own files included)
    runs = load_runs(run_dirs, eval_dirs)
    page = render_report(runs, title)
    refs = external_references(page)
    if refs:  # a bug here, not a user error: the page must never load anything
        raise ReportError(f"the report would load external resources: {refs[:5]}")
    out = Path(output)
    write_text(out, page)
    return out


# ---------------------------------------------------------------------- self-containment
_ATTR_URL = re.compile(r"""\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
_CSS_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)
_PLOTLYJS_BLOCK = re.compile(r'<script type="text/javascript" id="' + PLOTLYJS_ID + r'">.*?</script>', re.S)


def strip_plotlyjs(page: str) -> str:
    """The page without its inlined plotly.js bundle (the one block allowed to contain URL strings)."""
    return _PLOTLYJS_BLOCK.sub("<script></script>", page, count=1)


def external_references(page: str) -> list[str]:
    """What in ``page``, outside its inlined plotly.js bundle, refers to the network: ``src=``/``href=``/...
    attributes pointing at ``http(s)://`` or ``//host``, CSS ``url(http...)`` or ``@import``, and any other
    ``http(s)://`` string. Empty for a self-contained page.

    The bundle is left out because plotly.js's source holds URL strings by nature (licence comments,
    the plotly.com logo link the page hides with ``displaylogo: False``, map-tile servers and the
    topojson CDN that only geo/map traces use, and the page draws none); that nothing is fetched when
    the page is opened is checked in a browser with the network cut off (tests/report)."""
    rest = strip_plotlyjs(page)
    found = [m.group(0) for m in _ATTR_URL.finditer(rest)] + [m.group(0) for m in _CSS_URL.finditer(rest)]
    found += re.findall(r"https?://[^\s\"'<>)]*", rest)
    return found
