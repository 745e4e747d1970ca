"""Tables of the same-budget comparison: mean and spread over seeds of the held-out mIoU and
per-class IoU, with training wall and CPU time, from the run folders that run.sh wrote.

    python experiments/compare_budget/summarise.py [--runs experiments/runs/compare_budget] > table.md
"""

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path


def _mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="experiments/runs/compare_budget")
    runs = Path(ap.parse_args().runs)
    groups = defaultdict(list)
    for metrics in sorted(runs.glob("*/eval/metrics.json")):
        run = metrics.parent.parent.name
        m = re.fullmatch(r"(\w+?)_(.+)_s(\d+)", run)
        dataset, arm, seed = m.group(1), m.group(2), int(m.group(3))
        result = json.loads(metrics.read_text())
        timing = json.loads((runs / f"{run}.time").read_text().strip().splitlines()[-1])
        groups[dataset, arm].append((seed, result, timing))
    for dataset in sorted({d for d, _ in groups}):
        arms = [a for d, a in groups if d == dataset]
        classes = list(groups[dataset, arms[0]][0][1]["per_class"])
        print(f"\n### {dataset}: held-out mIoU, mean ± sample s.d. over seeds\n")
        print("| arm | seeds | mIoU | min..max | " + " | ".join(classes) + " | train wall min | CPU min |")
        print("|---|---|---|---|" + "---|" * len(classes) + "---|---|")
        for arm in arms:
            rows = sorted(groups[dataset, arm], key=lambda r: r[0])
            mious = [r[1]["miou"] for r in rows]
            per_class = [_mean_sd([r[1]["per_class"][c]["iou"] for r in rows]) for c in classes]
            wall = statistics.mean(r[2]["wall_s"] for r in rows) / 60
            cpu = statistics.mean(r[2]["user_s"] + r[2]["sys_s"] for r in rows) / 60
            print(f"| {arm} | {','.join(str(r[0]) for r in rows)} | {_mean_sd(mious)} | "
                  f"{min(mious):.3f}..{max(mious):.3f} | " + " | ".join(per_class) + f" | {wall:.1f} | {cpu:.1f} |")
    _extras(runs)


def _miou(path: Path):
    return json.loads(path.read_text())["miou"] if path.is_file() else None


def _extras(runs: Path) -> None:
    """Ensembles of seed pairs and flip TTA (ensemble_tta.sh), each against its single models."""
    extra = runs / "extra"
    if not extra.is_dir():
        return
    rows = []
    for metrics in sorted(extra.glob("*/metrics.json")):
        name = metrics.parent.name
        m = re.fullmatch(r"(\w+?)_(ensemble|tta_flips)_s(\d)(?:s(\d))?", name)
        dataset, kind, seeds = m.group(1), m.group(2), [s for s in m.groups()[2:] if s is not None]
        singles = [_miou(runs / f"{dataset}_lite_pretrained_s{s}" / "eval" / "metrics.json") for s in seeds]
        base = statistics.mean(singles)
        rows.append((dataset, kind, seeds, _miou(metrics), singles, base))
    if not rows:
        return
    print("\n### Ensembles of two seeds and flip TTA, against the single models\n")
    print("| dataset | what | seeds | mIoU | single model(s) | gain over the singles' mean |")
    print("|---|---|---|---|---|---|")
    for dataset, kind, seeds, miou, singles, base in rows:
        print(f"| {dataset} | {kind} | {'+'.join(seeds)} | {miou:.3f} | {', '.join(f'{v:.3f}' for v in singles)} | "
              f"{miou - base:+.3f} |")
    for kind in ("ensemble", "tta_flips"):
        gains = [r[3] - r[5] for r in rows if r[1] == kind]
        if gains:
            print(f"\n{kind}: mean gain {statistics.mean(gains):+.3f} over {len(gains)} cases "
                  f"(min {min(gains):+.3f}, max {max(gains):+.3f})")


if __name__ == "__main__":
    main()
