"""Export a trained model to TensorFlow SavedModel, ONNX or TFLite, checked against Keras.

    python -m landseg.export --model RUN/best.keras --format savedmodel|onnx|tflite --output DIR [--tile 256]

Keras' own exporter does the work (``model.export(format="tf_saved_model" | "onnx")``; ONNX
goes through tf2onnx on the TensorFlow backend); TFLite is converted from the SavedModel
with ``tf.lite.TFLiteConverter``.

**Size policy.** The exported graph has a fixed tile size (``tile x tile``, a multiple of
the model's size multiple; default 256) and a free batch size: landseg's models are fully
convolutional, but exporters need static spatial shapes (Keras' bilinear upsampling in
CSE-UNet cannot be traced with unknown height and width). Scenes are predicted as tiles
of that size, as ``landseg.predict`` does (overlap 0.25, sin^2 blending), and smaller
inputs are reflect-padded to it.

**Normalisation** is written beside the model in ``landseg_export.json`` (not baked into
the graph, so the exported input is the Keras model's input): the input is float32
``(N, tile, tile, bands)`` in [0, 1] = uint8 / 255, where the uint8 image is the raster's
selected bands stretched by the run's per-band ranges (``raster_normalisation``, if the
run has one) and histogram-matched to ``hist_reference.npy`` (copied beside, if the run
used one). The JSON also lists class names, palette, ignore value and the check below.

**Check.** After exporting, the exported model runs on a fixed sample batch (smooth random
images, seeded) with onnxruntime / the TFLite interpreter / the loaded SavedModel, and its
output must equal Keras' within the format's tolerance (max absolute difference of the
class probabilities): :data:`TOLERANCES`. A larger difference is an :class:`ExportCheckError`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landseg.inference.tiling import DEFAULT_TILE
from landseg.io_utils import atomic_path
from landseg.models.common import size_multiple_of

FORMATS = ("savedmodel", "onnx", "tflite")
# max |exported - keras| of the output probabilities on the check batch
TOLERANCES = {"savedmodel": 1e-5, "onnx": 1e-4, "tflite": 1e-4}
SIDECAR = "landseg_export.json"


class ExportError(ValueError):
    """The model cannot be exported as asked (unknown format, missing dependency, bad tile size)."""


class ExportCheckError(ExportError):
    """The exported model's output differs from Keras' by more than the tolerance."""


@dataclass
class ExportResult:
    format: str
    path: str  # the exported model (file or folder)
    sidecar: str
    max_abs_diff: float
    tolerance: float
    argmax_agreement: float
    input_shape: tuple
    files: list[str] = field(default_factory=list)


def check_sample(tile: int, bands: int, n: int = 2, seed: int = 0) -> np.ndarray:
    """A fixed float32 batch (n, tile, tile, bands) in [0, 1] with image-like structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32)
    out = np.empty((n, tile, tile, bands), np.float32)
    for i in range(n):
        for c in range(bands):
            f1, f2, ph = rng.uniform(3, 20), rng.uniform(3, 20), rng.uniform(0, 6.3)
            out[i, :, :, c] = 0.5 + 0.35 * np.sin(yy / f1 + ph) * np.cos(xx / f2 - ph)
    out += rng.normal(0, 0.05, out.shape).astype(np.float32)
    return np.clip(out, 0, 1)


# ---------------------------------------------------------------------- runners of exported models
def run_savedmodel(path: str, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    return np.asarray(loaded.serve(tf.constant(x)))


def run_onnx(path: str, x: np.ndarray) -> np.ndarray:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ExportError("checking an ONNX export needs onnxruntime: pip install 'landseg[export]'") from e
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])


def run_tflite(path: str, x: np.ndarray) -> np.ndarray:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's move-to-LiteRT notice
        it = tf.lite.Interpreter(model_path=path)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return np.asarray(it.get_tensor(it.get_output_details()[0]["index"]))


RUNNERS = {"savedmodel": run_savedmodel, "onnx": run_onnx, "tflite": run_tflite}


# ---------------------------------------------------------------------- export
def _keras_export(model, path: str, fmt: str, spec) -> None:
    kw = dict(input_signature=[spec])
    try:
        model.export(path, format=fmt, verbose=False, **kw)
    except TypeError:  # older Keras without verbose=
        model.export(path, format=fmt, **kw)


def export_model(model_path: str | os.PathLike, fmt: str, output: str | os.PathLike, *, tile: int | None = None,
                 tolerance: float | None = None, check: bool = True, sample_size: int = 2) -> ExportResult:
    """Export ``model_path`` (a ``.keras`` file, with its run folder's ``model_info.json`` if any)
    into the folder ``output`` as ``fmt``; see the module docstring."""
    import keras

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise ExportError(f"{model_path}: model file not found")
    if fmt == "onnx":
        for mod in ("tf2onnx", "onnxruntime"):
            try:
                __import__(mod)
            except ImportError as e:
                raise ExportError(f"ONNX export needs {mod}: pip install 'landseg[export]'") from e
    from landseg.model_files import ModelFileError, load_keras_model

    run = _load_run(model_path)
    try:
        model = load_keras_model(model_path)
    except ModelFileError as e:
        raise ExportError(str(e)) from None
    shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    bands = int(shape[-1])
    multiple = size_multiple_of(model, run.size_multiple if run is not None else None)
    tile = int(tile or DEFAULT_TILE)
    if tile % multiple:
        raise ExportError(f"tile {tile} is not a multiple of the model's size multiple {multiple}")
    fixed = [d for d in shape[1:3] if d is not None]
    if fixed and any(d != tile for d in fixed):
        from landseg.errors import OptionError

        raise OptionError("tile", f"the model has a fixed input size {shape[1:3]}; use {fixed[0]}", tile)
    spec = keras.InputSpec(shape=(None, tile, tile, bands), dtype="float32")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    _claim_outputs(out, fmt, model_path, run)
    tol = float(TOLERANCES[fmt] if tolerance is None else tolerance)

    if fmt == "savedmodel":
        target = out / TARGETS["savedmodel"]
        with tempfile.TemporaryDirectory(dir=out, prefix=".saved_model.") as tmp:
            _keras_export(model, os.path.join(tmp, "new"), "tf_saved_model", spec)
            if target.exists():  # every file in it is this stage's (checked by _claim_outputs): swap whole folders
                os.replace(target, os.path.join(tmp, "old"))
            os.replace(os.path.join(tmp, "new"), target)
        from landseg.output_folders import record

        record(out, "export", _files_under(out, target))
    elif fmt == "onnx":
        target = out / TARGETS["onnx"]
        with atomic_path(target) as tmp:
            _keras_export(model, tmp, "onnx", spec)
    else:
        import tensorflow as tf

        target = out / TARGETS["tflite"]
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            sm = os.path.join(tmp, "saved_model")
            _keras_export(model, sm, "tf_saved_model", spec)
            converter = tf.lite.TFLiteConverter.from_saved_model(sm)
            data = converter.convert()
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(data)

    diff, agree = float("nan"), float("nan")
    if check:
        x = check_sample(tile, bands, n=sample_size)
        ref = np.asarray(model.predict_on_batch(x), np.float32)
        got = RUNNERS[fmt](str(target), x).astype(np.float32)
        if got.shape != ref.shape:
            raise ExportCheckError(f"{target}: output shape {got.shape} differs from Keras' {ref.shape}")
        diff = float(np.max(np.abs(got - ref)))
        agree = float(np.mean(np.argmax(got, -1) == np.argmax(ref, -1)))
    files = [str(target)]
    if run is not None and run.hist_reference:
        dst = out / Path(run.hist_reference).name
        with atomic_path(dst) as tmp:
            shutil.copyfile(run.hist_reference, tmp)
        files.append(str(dst))
    sidecar = out / SIDECAR
    _write_sidecar(sidecar, fmt=fmt, target=target, model_path=model_path, run=run, tile=tile, bands=bands,
                   multiple=multiple, model=model, tol=tol, diff=diff, agree=agree, check=check,
                   sample_size=sample_size, hist_copied=len(files) > 1)
    files.append(str(sidecar))
    result = ExportResult(fmt, str(target), str(sidecar), diff, tol, agree, (None, tile, tile, bands), files)
    if check and not diff <= tol:
        raise ExportCheckError(f"{target}: exported output differs from Keras by {diff:.3g} (tolerance {tol:g}); "
                               f"argmax agrees on {agree:.2%} of pixels")
    return result


TARGETS = {"savedmodel": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite"}


def _files_under(root: Path, folder: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in sorted(folder.rglob("*")) if not p.is_dir()] if folder.is_dir() else []


def _claim_outputs(out: Path, fmt: str, model_path: str, run) -> None:
    """Refuse, before exporting, an output folder where the export would write over the model's run folder
    or over files ``export`` did not write, a user's files inside an old ``saved_model/`` included."""
    from landseg.output_folders import claim_outputs

    target = out / TARGETS[fmt]
    planned = [SIDECAR] + ([Path(run.hist_reference).name] if run is not None and run.hist_reference else [])
    planned += _files_under(out, target) if fmt == "savedmodel" else [target.name]
    claim_outputs(out, "export", planned, input_files=[model_path],
                  input_dirs=[os.path.dirname(os.path.abspath(model_path))])


def _load_run(model_path: str):
    from landseg.runs import load_run

    return load_run(model_path)


def _write_sidecar(path: Path, *, fmt, target, model_path, run, tile, bands, multiple, model, tol, diff, agree, check,
                   sample_size, hist_copied) -> None:
    from landseg.io_utils import write_json

    norm = None
    if run is not None:
        from landseg.data.raster import run_normalisation

        n = run_normalisation(run)
        norm = n.to_dict() if n is not None else None
    logits = bool(run.model_options.get("logits", False)) if run is not None else False
    cm = run.classmap if run is not None else None
    info = {
        "format": fmt,
        "model": os.path.basename(str(target)),
        "source": os.path.abspath(model_path),
        "input": {
            "shape": [None, tile, tile, bands],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "layout": "NHWC",
            "preprocessing": "select bands and stretch with raster_normalisation (if set) to uint8; histogram-match "
                             "to hist_reference (if set); divide by 255",
            "raster_normalisation": norm,
            "hist_reference": Path(run.hist_reference).name if hist_copied else None,
        },
        "size_policy": {
            "tile": tile,
            "size_multiple": multiple,
            "larger_scenes": "overlapping tiles of this size (landseg: overlap 0.25, sin^2 blending of probabilities)",
            "smaller_scenes": "reflect-pad bottom/right to the tile size, crop the output back",
        },
        "output": {
            "shape": [None, tile, tile, int(model.output_shape[-1])],
            "meaning": "class logits (apply softmax)" if logits else "class probabilities (softmax)",
        },
        "classes": None if cm is None else {
            "names": list(cm.class_names),
            "palette": [list(c) for c in cm.palette],
            "ignore_index": int(cm.ignore_index),
        },
        "check": {
            "done": bool(check),
            "runner": {"savedmodel": "tf.saved_model.load", "onnx": "onnxruntime", "tflite": "tf.lite.Interpreter"}[fmt],
            "samples": int(sample_size),
            "max_abs_diff": None if not check else diff,
            "tolerance": tol,
            "argmax_agreement": None if not check else agree,
        },
    }
    write_json(path, info)
