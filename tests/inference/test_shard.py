"""``landseg predict --shard I/N``: deterministic pixel-balanced shares, resumable outputs, the merge.

The end-to-end test starts two real ``python -m landseg.predict`` processes (shard 0/2 and 1/2) at the same
time into one folder and compares their outputs byte for byte with an unsharded run of a tiny CSE-UNet."""

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landseg.inference.shard import assign_shards, parse_shard, select_shard

from infer_helpers import random_image

REPO = Path(__file__).resolve().parents[2]
SIZES = [(96, 64), (64, 64), (40, 72), (128, 96), (33, 50), (64, 32), (70, 70)]


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "a/b", "1", "0/0"):
        with pytest.raises(ValueError, match="I/N"):
            parse_shard(bad)


def test_assignment_is_stable_under_reordering_and_balanced_by_pixels():
    rng = random.Random(0)
    paths = [f"/data/scene_{k:03d}.tif" for k in range(200)]
    px = {p: rng.choice([1_000_000, 250_000, 4_000_000, 10_000]) for p in paths}
    a = assign_shards(paths, 4, root="/data", pixels=px)
    shuffled = paths[:]
    rng.shuffle(shuffled)
    assert assign_shards(shuffled, 4, root="/data", pixels=px) == a  # same set -> same split
    loads = [sum(px[p] for p in paths if a[p] == s) for s in range(4)]
    assert max(loads) - min(loads) <= max(px.values())  # greedy bound: within one scene
    assert sorted(a.values()) == sorted(a[p] for p in paths) and set(a.values()) == {0, 1, 2, 3}
    # one huge scene and many small ones: the huge one gets a shard nearly to itself (not file-count balance)
    px2 = {"/d/big.png": 100, **{f"/d/s{k}.png": 1 for k in range(100)}}
    a2 = assign_shards(list(px2), 2, root="/d", pixels=px2)
    assert sum(1 for p, s in a2.items() if s == a2["/d/big.png"]) == 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from landseg.classmaps import get_classmap
    from landseg.models.registry import build_model
    from landseg.runs import save_run

    import keras

    keras.utils.set_random_seed(3)
    d = tmp_path_factory.mktemp("model")
    model = build_model("cse_unet", 6, (None, None, 3), base_width=4)
    model.save(d / "best.keras")
    save_run(d, model="cse_unet", model_options={"base_width": 4}, classmap=get_classmap("synthetic"), bands=3,
             size_multiple=32)
    return d / "best.keras"


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    d = tmp_path_factory.mktemp("scenes")
    for k, (h, w) in enumerate(SIZES):
        Image.fromarray(random_image(h, w, seed=40 + k)).save(d / f"scene{k}.png")
    return d


def _args(model, inp, out):
    return ["--models", str(model), "--input", str(inp), "--output", str(out), "--tile", "64", "--overlap", "0.25",
            "--no-progress"]


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


@pytest.mark.slow
def test_two_shard_processes_write_exactly_the_unsharded_outputs_and_resume(tiny_model, collection, tmp_path):
    from landseg.cli.predict import main

    ref = tmp_path / "ref"
    assert main(_args(tiny_model, collection, ref)) == 0
    expected = _files(ref)
    assert len(expected) == 4 * len(SIZES)

    out = tmp_path / "sharded"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "landseg.predict", *_args(tiny_model, collection, out),
                               "--shard", f"{i}/2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    s0, s1 = (json.loads((out / f"predict_summary.shard-{i}-of-2.json").read_text()) for i in range(2))
    w0, w1 = set(s0["written"]), set(s1["written"])
    assert not w0 & w1 and w0 | w1 == {f"scene{k}.png" for k in range(len(SIZES))}  # each scene once
    assert w0 and w1
    got = _files(out)
    assert got.keys() == expected.keys()
    assert all(got[k] == expected[k] for k in expected)  # byte for byte

    # a killed worker: one scene's output gone -> the rerun of its shard writes only that scene
    lost = "scene3"
    shard_of_lost = 0 if f"{lost}.png" in w0 else 1
    (out / "colour" / f"{lost}.png").unlink()
    before = {k: (out / k).stat().st_mtime_ns for k in got if not k.startswith("colour/scene3")}
    assert main(_args(tiny_model, collection, out) + ["--shard", f"{shard_of_lost}/2"]) == 0
    s = json.loads((out / f"predict_summary.shard-{shard_of_lost}-of-2.json").read_text())
    assert s["written"] == [f"{lost}.png"]
    assert len(s["skipped_complete"]) == len(w0 if shard_of_lost == 0 else w1) - 1
    assert _files(out) == expected
    changed = [k for k, t in before.items() if (out / k).stat().st_mtime_ns != t]
    assert all(k.endswith(f"/{lost}.png") for k in changed)  # nothing else rewritten

    # the merge: per-class pixels of all scenes, equal to counting the unsharded classes PNGs
    assert main(["--merge", str(out), "--input", str(collection)]) == 0
    summ = json.loads((out / "collection_summary.json").read_text())
    counts = np.zeros(6, np.int64)
    for k in range(len(SIZES)):
        counts += np.bincount(np.asarray(Image.open(ref / "classes" / f"scene{k}.png")).ravel(), minlength=6)
    assert [c["pixels"] for c in summ["per_class"]] == counts.tolist()
    assert summ["scenes"] == len(SIZES) and summ["missing"] == []
    rows = list(csv.DictReader(open(out / "scenes.csv")))
    assert sorted(r["scene"] for r in rows) == sorted(f"scene{k}" for k in range(len(SIZES)))
    assert {r["scene"]: int(r["pixels"]) for r in rows} == {f"scene{k}": h * w for k, (h, w) in enumerate(SIZES)}


def test_changed_settings_are_not_skipped_and_merge_refuses_mixed_runs(tiny_model, collection, tmp_path):
    from landseg.cli.predict import main

    out = tmp_path / "out"
    names = [f"scene{k}.png" for k in range(len(SIZES))]
    assert main(_args(tiny_model, collection, out) + ["--shard", "0/3"]) == 0
    first = json.loads((out / "predict_summary.shard-0-of-3.json").read_text())["written"]
    assert first and set(first) < set(names)
    assert main(_args(tiny_model, collection, out) + ["--shard", "0/3"]) == 0  # same run: nothing to do
    assert json.loads((out / "predict_summary.shard-0-of-3.json").read_text())["written"] == []
    # other overlap -> other signature: predicted again, and the merge sees a mix after shard 1 uses it
    assert main([a if a != "0.25" else "0.5" for a in _args(tiny_model, collection, out)] + ["--shard", "1/3"]) == 0
    assert main(["--merge", str(out)]) != 0
    assert main(["--merge", str(tmp_path / "nothing")]) != 0
    assert main(_args(tiny_model, collection, out) + ["--shard", "3/3"]) != 0
