"""Every registered model: forward pass shape, probabilities, size errors, and a .keras round
trip checked in a fresh Python process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_helpers import NUM_CLASSES, SIZE, TINY

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_shape_and_probabilities(name, tiny_models, batch):
    y = np.asarray(tiny_models[name](batch, training=False))
    assert y.shape == (2, SIZE, SIZE, NUM_CLASSES) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-5)
    assert (y >= 0).all()


@pytest.mark.parametrize("name", sorted(TINY))
def test_wrong_size_gives_clear_error(name, tiny_models):
    from landseg.models import get_model_spec

    multiple = get_model_spec(name).multiple(**TINY[name])  # the model owns its size multiple
    x = np.zeros((1, SIZE + 8, SIZE, 3), np.float32)
    with pytest.raises(ValueError, match=f"{name}' needs input height and width divisible by {multiple}; got 72x64"):
        tiny_models[name](x)


def test_cse_unet_paper_parameter_count():
    from landseg.models import build_model

    model = build_model("cse_unet", 6)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 34_570_886


def _multires_unet_params(bands: int, classes: int, u0: int = 32) -> int:
    """Trainable parameters of MultiResUNet from the paper's blocks, counted by hand: conv2d_bn = conv
    without bias + BatchNorm without scale (one offset per channel); the BatchNorms after a block's
    concatenation and residual sum, and after each Res-path sum, have scale and offset."""
    def widths(u):
        w = 1.67 * u
        return int(w * 0.167), int(w * 0.333), int(w * 0.5)

    def conv_bn(cin, cout, k):
        return k * k * cin * cout + cout

    def block(cin, u):
        a, b, c = widths(u)
        n = a + b + c
        return conv_bn(cin, n, 1) + conv_bn(cin, a, 3) + conv_bn(a, b, 3) + conv_bn(b, c, 3) + 4 * n

    def res_path(cin, f, length):
        return sum(conv_bn(f if j else cin, f, 1) + conv_bn(f if j else cin, f, 3) + 2 * f for j in range(length))

    u = [u0 * 2 ** i for i in range(5)]
    total, cin = 0, bands
    for i in range(4):
        total += block(cin, u[i]) + res_path(sum(widths(u[i])), u[i], 4 - i)
        cin = sum(widths(u[i]))
    total += block(cin, u[4])
    cin = sum(widths(u[4]))
    for i in range(3, -1, -1):
        total += 4 * cin * u[i] + u[i] + block(2 * u[i], u[i])  # 2x2 transposed conv with bias, then the block
        cin = sum(widths(u[i]))
    return total + cin * classes + classes


def test_multires_unet_parameter_count_is_the_papers():
    from landseg.models import build_model

    model = build_model("multires_unet", 1)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == _multires_unet_params(3, 1) == 7_238_228
    # the paper's 7,262,750 also counts the moving statistics of the authors' final conv + BatchNorm (2 for 1 class)
    assert model.count_params() + 2 == 7_262_750


def test_fcn8s_upsampling_starts_bilinear_and_skips_start_at_zero(tiny_models):
    import keras

    model = tiny_models["fcn8s"]
    for name in ("score_pool4", "score_pool3"):
        assert not np.any(model.get_layer(name).get_weights()[0])
    up = model.get_layer("upscore_pool4")
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32)[None, :, None, None], (1, 8, 8, NUM_CLASSES))
    out = np.asarray(up(ramp))  # bilinear (half-pixel centres) on a ramp: x/2 - 0.25 away from the borders
    want = np.asarray(keras.ops.image.resize(ramp, (16, 16), interpolation="bilinear"))
    np.testing.assert_allclose(out[:, 1:-1, 1:-1], want[:, 1:-1, 1:-1], atol=1e-5)


def test_logits_option_and_other_band_counts():
    from landseg.models import build_model

    x = np.random.default_rng(1).random((1, 32, 32, 4), dtype=np.float32)
    probs = build_model("cse_unet", 3, input_shape=(None, None, 4), base_width=4)
    logits = build_model("cse_unet", 3, input_shape=(None, None, 4), base_width=4, logits=True)
    logits.set_weights(probs.get_weights())
    z = np.asarray(logits(x))
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(np.asarray(probs(x)), e / e.sum(-1, keepdims=True), atol=1e-5)
    assert not np.allclose(z.sum(-1), 1.0)


def test_cse_unet_spatial_dropout_only_in_training():
    from landseg.models import build_model

    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    m = build_model("cse_unet", 3, base_width=4, dropout=0.5)
    assert sum("dropout" in w for w in json.dumps(m.get_config()).split('"name": ')) >= 9
    np.testing.assert_array_equal(np.asarray(m(x, training=False)), np.asarray(m(x, training=False)))
    assert not np.allclose(np.asarray(m(x, training=True)), np.asarray(m(x, training=False)))


def test_unet_equals_segmentation_models_on_0_255_pixels(batch):
    """The wrapper = sm.Unet fed the 0-255 pixels its ResNet expects (sm.get_preprocessing is identity).

    Compared as logits: random-init softmax outputs saturate and amplify float32 rounding.
    """
    from landseg.models import build_model
    from landseg.models.sm_models import import_sm

    sm = import_sm()
    ours = build_model("unet", NUM_CLASSES, backbone="resnet18", logits=True)
    ref = sm.Unet("resnet18", encoder_weights=None, classes=NUM_CLASSES, activation="linear")
    ref.set_weights(ours.get_layer("sm_unet_resnet18").get_weights())
    want = np.asarray(ref(batch * 255.0))
    np.testing.assert_allclose(np.asarray(ours(batch)), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_deeplab_output_stride_16_dilates_stage5(tiny_models):
    enc = tiny_models["deeplabv3_resnet50"].get_layer("encoder")
    assert enc.compute_output_shape((1, 64, 64, 3))[1:3] == (4, 4)
    assert enc.get_layer("conv5_block2_2_conv").dilation_rate == (2, 2)
    assert enc.get_layer("conv4_block2_2_conv").dilation_rate == (1, 1)


LOAD_SCRIPT = """
import json, sys
import numpy as np
from landseg.models import load_model
d = sys.argv[1]
x = np.load(d + "/x.npy")
out = {}
for name, sizes in json.load(open(d + "/plan.json")).items():
    m = load_model(f"{d}/{name}.keras")
    shapes = []
    for h, w in sizes:
        try:
            shapes.append(list(np.asarray(m.predict_on_batch(np.random.rand(1, h, w, 3).astype("float32"))).shape))
        except Exception as e:
            shapes.append(f"{type(e).__name__}: {e}"[:300])
    out[name] = {"diff": float(np.abs(np.asarray(m(x, training=False)) - np.load(f"{d}/{name}.npy")).max()),
                 "shapes": shapes}
print("RESULT", json.dumps(out))
"""


def test_keras_round_trip_in_fresh_process_and_several_sizes(tiny_models, batch, tmp_path):
    """Saved models load in a fresh process with the same outputs, and predict scenes of several sizes
    there: the second size makes Keras retrace with relaxed (None) H, W, which every model must cope with."""
    from landseg.models import get_model_spec

    plan = {}
    for name, model in tiny_models.items():
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", np.asarray(model(batch, training=False)))
        m = get_model_spec(name).multiple(**TINY[name])
        # deeplab: TF's dilated convolutions break under relaxed shapes (test_deeplab_several_sizes_known_bug)
        plan[name] = [] if name == "deeplabv3_resnet50" else [(4 * m, 4 * m), (6 * m, 4 * m), (4 * m, 8 * m)]
    np.save(tmp_path / "x.npy", batch)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("SM_FRAMEWORK", None)  # load_model must set it itself
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert set(results) == set(TINY)
    assert all(r["diff"] <= 1e-6 for r in results.values()), results
    for name, sizes in plan.items():
        assert results[name]["shapes"] == [[1, h, w, NUM_CLASSES] for h, w in sizes], (name, results[name]["shapes"])


def test_deeplab_several_sizes(tiny_models, tmp_path):
    """TensorFlow's dilated Conv2D (SpaceToBatchND) got wrong paddings when predict retraced with None H, W;
    landseg's AtrousConv2D (pad, slice, matmul) has no such path."""
    from landseg.models import load_model

    tiny_models["deeplabv3_resnet50"].save(tmp_path / "d.keras")
    loaded = load_model(tmp_path / "d.keras")
    for h, w in ((64, 64), (96, 64)):
        assert np.asarray(loaded.predict_on_batch(np.random.rand(1, h, w, 3).astype("float32"))).shape == (1, h, w, NUM_CLASSES)
