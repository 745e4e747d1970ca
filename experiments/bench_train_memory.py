"""Peak memory of one training epoch on a dataset larger than the cache budget.

Builds a DeepGlobe-layout folder of N scene pairs (symlinks to the shared real scenes, repeated:
the pixels are real, the count is what a large dataset has) and trains the DeepGlobe CPU recipe
for one epoch (one crop per scene) twice in this command: ``data.cache=auto`` (decoded on demand
when the scenes do not fit the budget) and the reference ``data.cache=true`` (every decoded
scene in memory, the behaviour before). Each run is its own process; its peak RSS comes from
``os.wait4``.

    python experiments/bench_train_memory.py --scenes 200 [--source ../shared/data/deepglobe/train]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_folder(source: Path, n: int, dest: Path) -> int:
    pairs = sorted(p for p in source.glob("*_sat.jpg") if (source / p.name.replace("_sat.jpg", "_mask.png")).exists())
    if not pairs:
        sys.exit(f"{source}: no DeepGlobe *_sat.jpg / *_mask.png pairs")
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sat = pairs[i % len(pairs)]
        (dest / f"{i:05d}_sat.jpg").symlink_to(sat.resolve())
        (dest / f"{i:05d}_mask.png").symlink_to(sat.with_name(sat.name.replace("_sat.jpg", "_mask.png")).resolve())
    return len(pairs)


def train_once(data_dir: Path, out: Path, cache: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "landseg.train", "--config", "experiments/configs/deepglobe_cpu.yaml",
           f"data.data_dir={data_dir}", f"data.cache={cache}", "data.val_fraction=0.05", "train.epochs=1",
           "train.steps_per_epoch=null", "train.verbose=2", "train.num_preview=0", f"run.output_dir={out}",
           f"run.name=cache_{cache}", *extra]
    start = time.perf_counter()
    with open(out / f"cache_{cache}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    return {"cache": cache, "exit": os.waitstatus_to_exitcode(status), "wall_s": round(time.perf_counter() - start, 1),
            "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--source", default="../shared/data/deepglobe/train")
    ap.add_argument("--skip-reference", action="store_true", help="only data.cache=auto")
    ap.add_argument("overrides", nargs="*", help="extra training overrides")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="landseg-mem-") as tmp:
        data = Path(tmp) / "data"
        distinct = make_folder(Path(args.source), args.scenes, data)
        decoded_gb = args.scenes * 2448 * 2448 * 4 / 1e9
        print(f"{args.scenes} scene pairs ({distinct} distinct real scenes), {decoded_gb:.1f} GB decoded if cached")
        rows = []
        for cache in ["auto"] + ([] if args.skip_reference else ["true"]):
            rows.append(train_once(data, Path(tmp), cache, args.overrides))
            print(json.dumps(rows[-1]), flush=True)
            if rows[-1]["exit"] != 0:
                print((Path(tmp) / f"cache_{cache}.log").read_text()[-3000:])
        if len(rows) == 2:
            print(f"peak RSS auto / true: {rows[0]['peak_rss_gb'] / rows[1]['peak_rss_gb']:.2f}")


if __name__ == "__main__":
    main()
