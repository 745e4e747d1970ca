"""The report's claims and the new models on real imagery, at the same small training budget, 3 seeds.

Each study is a set of arms; every arm is a CPU recipe with a few overrides, trained with ``run.seed``
0, 1, 2 and then scored by ``landseg evaluate --split val`` on whole scenes / tiles its training never
saw (the recipe's held-out split, fixed across arms). Budgets (epochs x steps) are chosen so that every
arm of a study takes about the same wall time on this 2-core CPU; the tables give the time measured.

    python experiments/claims/claims.py run models [--seeds 0,1,2] [--arms a,b]  # new models beside lite_unet, CSE-UNet, UNet
    python experiments/claims/claims.py run dropout                    # CSE-UNet with vs without dropout
    python experiments/claims/claims.py run cleaning                   # Dubai "unlabeled" ignored vs learned; dida duplicates
    python experiments/claims/claims.py run curve                      # DeepGlobe: 2, 4, 6, 8 training scenes
    python experiments/claims/claims.py summarise   # tables over every record in experiments/results/claims_runs/

Runs go to ``experiments/runs/claims/<study>_<arm>_s<seed>/`` (a finished, scored run is skipped, so the
command continues after a crash); data folders of symlinks for the subsets to ``experiments/runs/claims/data``.
Run folders are not committed: ``summarise`` first copies each scored run's scores, per-epoch history and wall
time into ``experiments/results/claims_runs/<run>.json``, then prints tables over all those records.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "experiments" / "runs" / "claims"
RECORDS = REPO / "experiments" / "results" / "claims_runs"  # one small JSON per scored run, committed
SHARED = REPO.parent / "shared" / "data"
DUBAI, DEEPGLOBE, DIDA = (f"experiments/configs/{n}_cpu.yaml" for n in ("dubai", "deepglobe", "dida"))

LITE = "model.name=lite_unet train.epochs=6 train.steps_per_epoch=40"  # ~5 min on a quiet machine
CSE = "model.name=cse_unet model.options.base_width=16 train.epochs=4 train.steps_per_epoch=30"
STUDIES: dict[str, list[tuple[str, str, str]]] = {  # arm, config, overrides
    "models": [
        ("lite_unet_pretrained", DUBAI, LITE),
        ("cse_unet_w16_scratch", DUBAI, CSE),
        ("unet_r34_scratch", DUBAI, "model.name=unet model.options.backbone=resnet34 train.epochs=3 train.steps_per_epoch=15"),
        ("segformer_b0_scratch", DUBAI, "model.name=segformer model.options.size=b0 train.epochs=6 train.steps_per_epoch=40"),
        ("deeplabv3plus_lite0_pretrained", DUBAI, "model.name=deeplabv3plus model.options.encoder=efficientnet_lite0 "
         "model.options.encoder_weights=imagenet-lite0 model.options.aspp_filters=64 train.epochs=4 train.steps_per_epoch=30"),
        ("fcn8s_hed_pretrained", DUBAI, "model.name=fcn8s model.options.encoder_weights=hed-vgg16 train.epochs=3 "
         "train.steps_per_epoch=10"),
        ("fcn8s_hed_pretrained_lr1e-4", DUBAI, "model.name=fcn8s model.options.encoder_weights=hed-vgg16 train.epochs=3 "
         "train.steps_per_epoch=10 optimizer.lr=0.0001"),  # VGG16 has no BatchNorm: the recipe's 1e-3 may wreck it
        ("multires_unet_w16_scratch", DUBAI, "model.name=multires_unet model.options.base_width=16 train.epochs=3 "
         "train.steps_per_epoch=15"),
    ],
    "dropout": [  # the no-dropout arm is the models study's cse_unet_w16_scratch
        ("cse_unet_w16_dropout0.2", DUBAI, CSE + " model.options.dropout=0.2"),
    ],
    "cleaning": [  # the cleaned Dubai arm is the models study's lite_unet_pretrained
        ("dubai_unlabeled_as_class", DUBAI, LITE + " data.classmap=dubai6"),
        ("dida_all_labels", DIDA, "train.epochs=6"),
        ("dida_duplicates_removed", DIDA, "train.epochs=6 data.data_dir={data}/dida_clean"),
    ],
    "curve": [(f"deepglobe_{n}_scenes", DEEPGLOBE, "model.name=lite_unet train.epochs=5 train.steps_per_epoch=40 "
               f"data.data_dir={{data}}/deepglobe_{n}_s{{seed}}") for n in (2, 4, 6, 8)],
}
DIDA_DUPLICATES = ("270", "278")  # `landseg data check` finds these two labels identical


def _landseg(stage: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"landseg.{stage}", *args]


def _held_out(config: str) -> list[str]:
    """The recipe's validation groups (its split, fixed for every arm of a study)."""
    from landseg.config import load_config
    from landseg.data.layouts import discover, scene_of, split_samples

    c = load_config(REPO / config).data
    _, val = split_samples(discover(REPO / c.data_dir, c.layout).labelled, c.val_fraction, c.split_seed, c.split_by_group)
    return sorted({scene_of(s) for s in val})


def _prepare_data(data: Path) -> None:
    """Symlink folders: dida without the duplicate labels; DeepGlobe subsets of the 8 training scenes
    (drawn with the seed) beside the 2 held-out ones."""
    clean = data / "dida_clean"
    if not clean.exists():
        for sub in ("images", "labels"):
            (clean / sub).mkdir(parents=True)
            for f in sorted((SHARED / "dida-roofs" / sub).iterdir()):
                if not (sub == "labels" and f.stem in DIDA_DUPLICATES):
                    os.symlink(f, clean / sub / f.name)
    held = set(_held_out(DEEPGLOBE))
    scenes = sorted(p.name[: -len("_sat.jpg")] for p in (SHARED / "deepglobe" / "train").glob("*_sat.jpg"))
    train = [s for s in scenes if f"{s}_sat" not in held]
    for seed in (0, 1, 2):
        order = random.Random(seed).sample(train, len(train))
        for n in (2, 4, 6, 8):
            d = data / f"deepglobe_{n}_s{seed}"
            if d.exists():
                continue
            d.mkdir(parents=True)
            for s in order[:n] + [h[: -len("_sat")] for h in held]:
                for suffix in ("_sat.jpg", "_mask.png"):
                    os.symlink(SHARED / "deepglobe" / "train" / f"{s}{suffix}", d / f"{s}{suffix}")


def run(study: str, seeds: list[int], arms: set[str] | None = None) -> None:
    data = RUNS / "data"
    _prepare_data(data)
    for seed in seeds:
        for arm, config, overrides in STUDIES[study]:
            if arms and arm not in arms:
                continue
            name = f"{study}_{arm}_s{seed}"
            run_dir, scored = RUNS / name, RUNS / name / "eval_heldout" / "metrics.json"
            if scored.is_file():
                print(f"{name}: done", flush=True)
                continue
            held = json.dumps(_held_out(config))  # quoted: dida's groups are numbers such as 121
            args = ["--config", config, f"run.name={name}", f"run.output_dir={RUNS}", f"run.seed={seed}",
                    "train.verbose=2", f"data.val_groups={held}",
                    *overrides.format(data=data, seed=seed).split()]
            with open(RUNS / f"{name}.log", "a") as log:
                t = subprocess.run(["/usr/bin/time", "-f", '{"wall_s": %e, "user_s": %U, "sys_s": %S}', "-o",
                                    str(RUNS / f"{name}.time"), *_landseg("train", *args)], cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT)
                if t.returncode:
                    print(f"{name}: training failed ({RUNS / f'{name}.log'})", flush=True)
                    continue
                subprocess.run(_landseg("evaluate", "--model", str(run_dir / "best.keras"), "--split", "val",
                                        "--no-progress", "--output", str(scored.parent)), cwd=REPO, stdout=log,
                               stderr=subprocess.STDOUT)
            print(f"{name}: mIoU {json.loads(scored.read_text())['miou']:.3f}" if scored.is_file() else
                  f"{name}: evaluation failed", flush=True)


# ----------------------------------------------------------------------------- tables
def _ms(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _miou_over(iou: dict, classes: list[str]) -> float | None:
    v = [iou[c] for c in classes if iou.get(c) is not None]
    return statistics.mean(v) if v else None


def _stability(history: list[dict]) -> tuple[float | None, float]:
    """(sd of the epoch-to-epoch change of validation mIoU, largest rise of the epoch's training loss)."""
    val = [r["val_miou"] for r in history if "val_miou" in r]
    loss = [r["loss"] for r in history if "loss" in r]
    steps = [b - a for a, b in zip(val, val[1:])]
    rises = [b - a for a, b in zip(loss, loss[1:])]
    return (statistics.stdev(steps) if len(steps) > 1 else None), max(rises, default=0.0)


def _harvest() -> None:
    """Copy what the tables need from each scored run folder into a small committed record, so that a
    table can be rebuilt after the run folders (which are not committed) are gone."""
    RECORDS.mkdir(parents=True, exist_ok=True)
    for scored in sorted(RUNS.glob("*/eval_heldout/metrics.json")):
        run = scored.parent.parent
        metrics = json.loads(scored.read_text())
        history = json.loads((run / "state.json").read_text()).get("history", [])
        record = {
            "run": run.name,
            "miou": metrics["miou"],
            "iou": {c: v.get("iou") for c, v in metrics["per_class"].items()},
            "history": [{k: r[k] for k in ("epoch", "loss", "val_miou") if k in r} for r in history],
            "timing": json.loads((RUNS / f"{run.name}.time").read_text().strip().splitlines()[-1]),
        }
        (RECORDS / f"{run.name}.json").write_text(json.dumps(record, indent=1) + "\n")


def summarise() -> None:
    _harvest()
    rows: dict[tuple[str, str], list] = {}
    for path in sorted(RECORDS.glob("*.json")):
        record = json.loads(path.read_text())
        study, rest = record["run"].split("_", 1)
        arm, seed = rest.rsplit("_s", 1)
        rows.setdefault((study, arm), []).append((int(seed), record))
    for study in STUDIES:
        arms = [a for s, a in rows if s == study]
        if not arms:
            continue
        print(f"\n## {study}\n")
        classes = list(dict.fromkeys(c for a in arms for c in rows[study, a][0][1]["iou"]))  # a study may span datasets
        print("| arm | seeds | held-out mIoU | " + " | ".join(classes) + " | sd of epoch-to-epoch val mIoU change | "
              "largest training-loss rise | train wall min |")
        print("|---|---|---|" + "---|" * len(classes) + "---|---|---|")
        for arm in arms:
            r = sorted(rows[study, arm], key=lambda x: x[0])
            stab = [_stability(x[1]["history"]) for x in r]
            five = [_miou_over(x[1]["iou"], [c for c in x[1]["iou"] if c != "unlabeled"]) for x in r]
            print(f"| {arm} | {','.join(str(x[0]) for x in r)} | {_ms(five)} | "
                  + " | ".join(_ms([x[1]["iou"].get(c) for x in r]) for c in classes)
                  + f" | {_ms([s[0] for s in stab])} | {_ms([s[1] for s in stab])} | "
                  f"{statistics.mean(x[1]['timing']['wall_s'] for x in r) / 60:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("run", "summarise"))
    ap.add_argument("study", nargs="?", choices=sorted(STUDIES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default="", help="comma-separated arms of the study (default: all)")
    a = ap.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    if a.command == "run":
        run(a.study, [int(s) for s in a.seeds.split(",")], set(filter(None, a.arms.split(","))))
    else:
        summarise()


if __name__ == "__main__":
    main()
