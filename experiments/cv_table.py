"""One Markdown table over several cross-validation folders (``landseg cv`` outputs): per recipe, the
folds' mean mIoU ± sd, each fold's mIoU and each class's mean ± sd, so recipes judged on the same
folds sit side by side.

    python experiments/cv_table.py experiments/runs/deepglobe_cpu-cv5 experiments/runs/dgs_base-cv5 ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _ms(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "-"
    return f"{d['mean']:.3f}" + ("" if d.get("std") is None else f" ± {d['std']:.3f}")


def main(folders: list[str]) -> None:
    summaries = [(Path(f).name, json.loads((Path(f) / "cv_summary.json").read_text())) for f in folders]
    classes = list(dict.fromkeys(c for _, s in summaries for c in s["per_class"]))
    print("| recipe | folds done | mIoU mean ± sd | per fold | " + " | ".join(classes) + " | train wall per fold, min |")
    print("|---|---|---|---|" + "---|" * len(classes) + "---|")
    for name, s in summaries:
        folds = sorted(s["folds"], key=lambda f: (f["seed"], f["fold"]))
        walls = [f["train_wall_seconds"] / 60 for f in folds if f.get("train_wall_seconds")]
        done = f"{len(folds)}/{s['k'] * len(s['seeds'])}"
        print(f"| {name} | {done} | **{_ms(s)}** | "
              + ", ".join(f"{f['miou']:.3f}" for f in folds) + " | "
              + " | ".join(_ms(s["per_class"].get(c)) for c in classes)
              + (f" | {min(walls):.0f}-{max(walls):.0f} |" if walls else " | - |"))


if __name__ == "__main__":
    main(sys.argv[1:])
