"""Sharded mapping of a scene collection: ``--shard I/N`` shares, resumable outputs, and the merge.

**Shares.** :func:`assign_shards` gives every input a shard index from the *set* of inputs alone: files are
ordered by (pixel count, descending; then a SHA-1 of their path relative to the input folder) and each is
given to the shard with the fewest pixels so far (lowest index on a tie). The listing order does not matter
and no coordinator is needed: N workers of a job array (Slurm array, Kubernetes Indexed Job) that see the
same folder compute the same split, each taking the scenes of its own index. Shards are balanced by pixels
(the work), not by file count. Adding or removing files can move others between shards; run every shard
of one collection over the same set of files.

**Resuming.** Once a scene's outputs are written (each atomically), a sidecar ``done/<stem>.json`` is
written (also atomically) recording the model set (paths and SHA-256 of the files), weights, settings,
the outputs with their sizes and the scene's pixels per class. A scene whose sidecar matches the run's
signature and whose outputs all exist with the recorded sizes is skipped, so rerunning a killed worker
writes only what was missing (``--overwrite`` predicts everything again).

**Merge.** :func:`merge_outputs` reads the sidecars of all shards and writes the collection summary:
``collection_summary.json`` (per-class pixels, fraction and, for georeferenced scenes, area in CRS units²)
and ``scenes.csv`` (one row per scene, pixels per class).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from landseg.io_utils import atomic_path, write_json

SIDECAR_DIR = "done"
SIDECAR_VERSION = 1


from landseg.errors import invalid  # noqa: E402


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; ValueError naming the valid form otherwise."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise invalid("shard", text, "I/N with 0 <= I < N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise invalid("shard", text, "I/N with 0 <= I < N, e.g. 0/4")
    return i, n


def scene_pixels(path: str | os.PathLike) -> int:
    """Pixels of a scene from its header (no decode); 0 when the header cannot be read (the scene is
    still assigned, and fails by name in its shard)."""
    path = os.fspath(path)
    try:
        from landseg.data.raster import use_rasterio

        if use_rasterio(path):
            import rasterio

            with rasterio.open(path) as src:
                return int(src.width) * int(src.height)
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[0]) * int(im.size[1])
    except Exception:  # noqa: BLE001 - unreadable: weight 0, reported later by the predict loop
        return 0


def _key(path: str, root: str | os.PathLike | None) -> str:
    rel = os.path.relpath(path, root) if root is not None else os.path.basename(path)
    return rel.replace(os.sep, "/")


def assign_shards(paths, n: int, root=None, pixels: dict | None = None) -> dict[str, int]:
    """``{path: shard}`` for ``n`` shards: greedy by pixel count (largest first, ties by SHA-1 of the
    path relative to ``root``), each scene to the currently lightest shard. Deterministic given the set."""
    if n < 1:
        raise ValueError(f"number of shards must be >= 1, got {n}")
    paths = [os.fspath(p) for p in paths]
    px = {p: (pixels[p] if pixels is not None else scene_pixels(p)) for p in paths}
    order = sorted(paths, key=lambda p: (-px[p], hashlib.sha1(_key(p, root).encode()).hexdigest(), _key(p, root)))
    load = [0] * n
    out: dict[str, int] = {}
    for p in order:
        s = min(range(n), key=lambda k: (load[k], k))
        out[p] = s
        load[s] += px[p]
    return out


def select_shard(paths, shard: tuple[int, int], root=None) -> list[str]:
    """The inputs of shard ``(i, n)``, in the given order."""
    i, n = shard
    a = assign_shards(paths, n, root)
    return [os.fspath(p) for p in paths if a[os.fspath(p)] == i]


# ----------------------------------------------------------------------------- sidecars
def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def run_signature(models, weights, settings, *, classmap: str, save_probs: bool) -> dict:
    """What decides a scene's outputs: model files (by content), weights, tiling/TTA settings, class map."""
    return {
        "models": [{"path": os.path.abspath(m), "sha256": file_sha256(m)} for m in models],
        "weights": [float(w) for w in weights],
        "settings": {"tile": settings.tile, "overlap": settings.overlap, "batch_size": settings.batch_size,
                     "tta": settings.tta},
        "classmap": classmap,
        "save_probs": bool(save_probs),
    }


def _same_signature(a: dict, b: dict) -> bool:
    """Equal, ignoring where the model files lie (their content decides)."""
    def norm(s):
        s = dict(s)
        s["models"] = [m["sha256"] for m in s.get("models", [])]
        return s

    return norm(a) == norm(b)


def sidecar_path(out: str | os.PathLike, stem: str) -> Path:
    return Path(out) / SIDECAR_DIR / f"{stem}.json"


def write_sidecar(out, stem: str, *, source: str, signature: dict, outputs, class_names, class_pixels,
                  pixel_area: float | None = None, crs: str | None = None) -> Path:
    """Record a scene as complete; call only after all its outputs are written (atomically itself)."""
    out = Path(out)
    files = {Path(os.path.relpath(f, out)).as_posix(): os.stat(f).st_size for f in outputs}
    rec = {"version": SIDECAR_VERSION, "stem": stem, "source": os.path.abspath(source), "signature": signature,
           "outputs": files, "class_names": list(class_names),
           "class_pixels": [int(v) for v in class_pixels], "pixel_area": pixel_area, "crs": crs}
    p = sidecar_path(out, stem)
    write_json(p, rec)
    return p


def read_sidecar(out, stem: str) -> dict | None:
    try:
        return json.loads(sidecar_path(out, stem).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out, stem: str, signature: dict) -> bool:
    """The scene's sidecar matches ``signature`` and all its recorded outputs exist with their sizes."""
    rec = read_sidecar(out, stem)
    if not rec or rec.get("version") != SIDECAR_VERSION or not _same_signature(rec.get("signature", {}), signature):
        return False
    for rel, size in rec.get("outputs", {}).items():
        f = Path(out) / rel
        try:
            if f.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


# ----------------------------------------------------------------------------- merge
def merge_outputs(out: str | os.PathLike, input_dir: str | os.PathLike | None = None) -> dict:
    """Collection summary from the sidecars of all shards in ``out``: writes ``collection_summary.json``
    and ``scenes.csv``; returns the summary. With ``input_dir``, inputs without a complete sidecar are
    listed as ``missing``. ValueError when there is nothing to merge or the shards used different models
    or settings."""
    out = Path(out)
    files = sorted((out / SIDECAR_DIR).glob("*.json")) if (out / SIDECAR_DIR).is_dir() else []
    if not files:
        raise ValueError(f"{out}: no {SIDECAR_DIR}/<stem>.json sidecars to merge (is this a predict output folder?)")
    recs = []
    for f in files:
        try:
            recs.append(json.loads(f.read_text()))
        except ValueError as e:
            raise ValueError(f"{f}: not a readable sidecar ({e})") from None
    sig, names = recs[0]["signature"], recs[0]["class_names"]
    for r in recs[1:]:
        if not _same_signature(r["signature"], sig) or r["class_names"] != names:
            raise ValueError(f"{out / SIDECAR_DIR / (r['stem'] + '.json')}: predicted with other models or settings "
                             f"than {recs[0]['stem']}; merge outputs of one run only")
    from landseg.output_folders import claim_outputs

    claim_outputs(out, "predict", ["scenes.csv", "collection_summary.json"], input_dirs=[input_dir], tag="merge")
    nc = len(names)
    totals = [0] * nc
    areas = [0.0] * nc
    all_geo = all(r.get("pixel_area") for r in recs)
    crs = sorted({r.get("crs") for r in recs if r.get("crs")})
    with atomic_path(out / "scenes.csv", suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["scene", "source", "pixels"] + [f"px_{n}" for n in names] + ["pixel_area", "crs"])
            for r in recs:
                cp = r["class_pixels"]
                for k in range(nc):
                    totals[k] += cp[k]
                    if all_geo:
                        areas[k] += cp[k] * r["pixel_area"]
                w.writerow([r["stem"], r["source"], sum(cp)] + cp + [r.get("pixel_area") or "", r.get("crs") or ""])
    total = sum(totals)
    summary = {
        "scenes": len(recs),
        "pixels": total,
        "signature": sig,
        "per_class": [{"class_id": k, "class_name": names[k], "pixels": totals[k],
                       "fraction": round(totals[k] / total, 6) if total else 0.0}
                      | ({"area": areas[k]} if all_geo else {}) for k in range(nc)],
        "area_units": (f"CRS units² ({', '.join(crs)})" if crs else "CRS units²") if all_geo else None,
    }
    if input_dir is not None:
        from landseg.data.io import list_images

        stems = {r["stem"] for r in recs}
        summary["missing"] = [os.fspath(p) for p in list_images(os.fspath(input_dir))
                              if Path(p).stem not in stems or not is_complete(out, Path(p).stem, sig)]
    write_json(out / "collection_summary.json", summary)
    return summary
