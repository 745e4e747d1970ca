"""The report in a real browser: headless Chromium opens the page with every host unresolvable
(so anything the page tried to fetch would fail), runs its JavaScript, and the DOM it dumps holds
the run names, the per-class table and the SVG that Plotly drew. Also writes a screenshot
(``$LANDSEG_REPORT_SCREENSHOT`` or the test's tmp folder) to look at."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _browser() -> str | None:
    env = os.environ.get("LANDSEG_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


CHROMIUM = _browser()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=f"no Chromium/Chrome binary found (looked for {', '.join(BROWSERS)} "
                                "on PATH and $LANDSEG_CHROMIUM); install one, e.g. apt-get install chromium")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           # no network: every host name fails to resolve, so a page that needed one would show it
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_chromium_renders_names_table_and_plots(report_file, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", report_file.resolve().as_uri())
    dom = proc.stdout
    assert proc.returncode == 0 and dom, proc.stderr[-2000:]
    # the dump is the DOM after the scripts ran: drop the plotly.js bundle text, keep the rendered page
    body = dom[dom.find("<body"):]
    for name in ("run-alpha", "run-beta"):
        assert name in body
    assert 'id="per-class-val"' in body and "mean IoU" in body
    # Plotly drew both figures: its <svg class="main-svg"> elements and one line trace per run and split
    for plot_id in ("curves-plot", "per-class-plot"):
        start = body.find(f'id="{plot_id}"')
        assert start >= 0, plot_id
        assert 'class="main-svg"' in body[start:start + 200_000], f"{plot_id}: Plotly drew no SVG"
    assert len(re.findall(r'class="main-svg"', body)) >= 4
    assert len(re.findall(r'class="[^"]*\bscatterlayer\b', body)) >= 2
    assert body.count('class="trace scatter') >= 8  # 2 runs x (train, validation) x (loss, mIoU)
    # the rendered DOM (Plotly's modebar included) refers to nothing on the network
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?(?:https?:)?//""", body, re.I)


def test_chromium_screenshot(report_file, tmp_path):
    shot = Path(os.environ.get("LANDSEG_REPORT_SCREENSHOT") or tmp_path / "report.png")
    proc = _chromium(tmp_path, "--window-size=1400,2800", f"--screenshot={shot}", report_file.resolve().as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1400, 2800)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # more than a blank or error page
