"""Map a folder of scenes with one model or an ensemble: colour mask, class indices, overlay, confidence.

    python -m landseg.predict --models A.keras [B.keras ...] [--weights 2 1] --input DIR --output DIR
        [--tta [flips|d4]] [--tile 512 --overlap 0.25] [--dataset NAME] [--save-probs]

Outputs, per input image ``<stem>``: ``colour/<stem>.png`` (palette of the class map),
``classes/<stem>.png`` (class indices), ``overlay/<stem>.png`` (mask blended on the image),
``confidence/<stem>.png`` (ensemble probability of the chosen class, 0-255) and, with
``--save-probs``, ``probs/<stem>.npy`` (float16 HxWxC). Every file is written atomically.
An image that cannot be read (or predicted) is reported by name and skipped; the others
are still written and the exit code is 1 when any failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from landseg.io_utils import atomic_path, write_json

OUTPUT_KINDS = ("colour", "classes", "overlay", "confidence")


# ----------------------------------------------------------------------------- shared CLI bits
def add_predictor_args(p: argparse.ArgumentParser) -> None:
    """Options shared by predict / pseudolabel / evaluate (tiling, TTA, batch)."""
    from landseg import inference as inf

    p.add_argument("--tile", type=int, default=inf.DEFAULT_TILE, help="tile size in px (rounded up to the models' size multiple)")
    p.add_argument("--overlap", type=float, default=inf.DEFAULT_OVERLAP, help="fraction of a tile shared with its neighbour")
    p.add_argument("--batch-size", type=int, default=inf.DEFAULT_BATCH, help="tiles per model call (bounds memory)")
    p.add_argument(
        "--tta", nargs="?", const="d4", default="none", choices=sorted(inf.TTA_MODES),
        help="test-time augmentation: 'd4' (8 flips/rotations, default when given bare), 'flips' (4) or 'none'",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_ensemble_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", required=True, help="saved models (.keras); model_info.json beside each is read")
    p.add_argument("--weights", nargs="+", type=float, default=None, help="one weight per model (default: equal)")
    p.add_argument("--dataset", default=None, help="class map / dataset name for palette and class names (default: saved with the model)")


def build_predictor(args, entries):
    from landseg.inference import Predictor

    return Predictor(entries, tile=args.tile, overlap=args.overlap, batch_size=args.batch_size, tta=args.tta)


def run_over_images(
    predictor,
    paths: Iterable[str | os.PathLike],
    handle: Callable[[str, np.ndarray, object], None],
    *,
    keep_probs: bool = False,
    progress: bool = True,
    desc: str = "images",
) -> list[tuple[str, str]]:
    """Read, predict and ``handle(path, image, result)`` each image; return ``[(path, error)]`` failures.

    A failure in one image (unreadable file, wrong band count, ...) is reported on stderr
    by name and does not stop the others.
    """
    from tqdm import tqdm

    from landseg.data.io import read_image

    paths = [os.fspath(p) for p in paths]
    failures: list[tuple[str, str]] = []
    bar = tqdm(paths, desc=desc, unit="img", disable=not progress, file=sys.stderr)
    for path in bar:
        try:
            image = read_image(path)
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported and skipped
            msg = str(e) if str(e).startswith(path) else f"{path}: {e}"
            failures.append((path, msg))
            tqdm.write(f"skipped (unreadable): {msg}", file=sys.stderr)
            continue
        try:
            from landseg.inference import make_grid

            grid = make_grid(image.shape[0], image.shape[1], predictor.tile, predictor.overlap, predictor.size_multiple)
            with tqdm(total=grid.num_tiles, desc=os.path.basename(path), unit="tile", leave=False, disable=not progress, file=sys.stderr) as tbar:
                result = predictor.predict_scene(image, keep_probs=keep_probs, progress=tbar.update)
            handle(path, image, result)
        except Exception as e:  # noqa: BLE001
            msg = f"{path}: {type(e).__name__}: {e}"
            failures.append((path, msg))
            tqdm.write(f"failed: {msg}", file=sys.stderr)
    return failures


# ----------------------------------------------------------------------------- outputs
def rgb_view(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 view of an image with any band count (grey repeated, extra bands dropped)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8, copy=False)


def overlay(image: np.ndarray, colour: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    rgb = rgb_view(image).astype(np.float32)
    return np.clip((1 - alpha) * rgb + alpha * colour.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> None:
    from landseg.data.io import write_png

    write_png(path, array)


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_outputs(out: Path, stem: str, image: np.ndarray, result, classmap, save_probs: bool = False) -> list[Path]:
    colour = classmap.encode_rgb(result.labels)
    files = {
        "colour": (out / "colour" / f"{stem}.png", colour),
        "classes": (out / "classes" / f"{stem}.png", result.labels.astype(np.uint8)),
        "overlay": (out / "overlay" / f"{stem}.png", overlay(image, colour)),
        "confidence": (out / "confidence" / f"{stem}.png", np.clip(result.confidence * 255 + 0.5, 0, 255).astype(np.uint8)),
    }
    written = []
    for path, arr in files.values():
        save_png(path, arr)
        written.append(path)
    if save_probs and result.probs is not None:
        p = out / "probs" / f"{stem}.npy"
        save_npy(p, result.probs.astype(np.float16))
        written.append(p)
    return written


def list_inputs(folder: str) -> list[str]:
    from landseg.data.io import list_images

    return [os.fspath(p) for p in list_images(folder)]


def unique_stems(paths: list[str]) -> dict[str, str]:
    """Output name per input; refuse two inputs that would write the same files."""
    stems: dict[str, str] = {}
    for p in paths:
        s = Path(p).stem
        if s in stems:
            raise ValueError(f"{p}: same name as {stems[s]} (outputs are named by stem); rename one of them")
        stems[s] = p
    return {p: s for s, p in stems.items()}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m landseg.predict", description=__doc__.split("\n")[0])
    add_ensemble_args(p)
    p.add_argument("--input", required=True, help="folder of images")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--save-probs", action="store_true", help="also write probs/<stem>.npy (float16 HxWxC)")
    add_predictor_args(p)
    args = p.parse_args(argv)

    from landseg.inference import ensemble_classmap, load_ensemble

    try:
        entries = load_ensemble(args.models, args.weights)
        classmap = ensemble_classmap(entries, args.dataset)
        paths = list_inputs(args.input)
        names = unique_stems(paths)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    predictor = build_predictor(args, entries)
    out = Path(args.output)
    t0 = time.perf_counter()
    done: list[str] = []

    def handle(path, image, result):
        write_outputs(out, names[path], image, result, classmap, args.save_probs)
        done.append(path)

    failures = run_over_images(predictor, paths, handle, keep_probs=args.save_probs, progress=not args.no_progress)
    summary = {
        "models": [os.path.abspath(m) for m in args.models],
        "weights": [e.weight for e in entries],
        "classmap": classmap.name,
        "class_names": list(classmap.class_names),
        "tta": args.tta,
        "tile": predictor.tile,
        "overlap": predictor.overlap,
        "input": os.path.abspath(args.input),
        "written": [Path(p).name for p in done],
        "failed": [{"image": path, "error": msg} for path, msg in failures],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "predict_summary.json", summary)
    print(f"predicted {len(done)} image(s) into {out}" + (f"; {len(failures)} failed: " + ", ".join(Path(f).name for f, _ in failures) if failures else ""), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
