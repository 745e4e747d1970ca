"""The legacy torch.save reader unpickles nothing but a plain state dict: crafted files that would run
a command are refused, with the file and the refused global named, and the command never runs."""

import os
import pickle
import struct

import numpy as np
import pytest

from landseg.models.encoders.torch_pickle import TorchFileError, load_legacy_state_dict

HEADERS = (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                           "type_sizes": {"short": 2, "int": 4, "long": 4}})


class _RunsCommand:
    """Unpickling this calls os.system(command), as a hostile .pth would."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _unicode(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _state_dict_pickle(tensors: dict) -> bytes:
    """What torch.save writes for {name: float32 tensor}, opcode by opcode (torch is not needed)."""
    out = b"\x80\x02ccollections\nOrderedDict\n)R("
    for i, (name, a) in enumerate(tensors.items()):
        storage = b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode(str(i)) + _unicode("cpu") + \
            _int(a.size) + b"Nt"
        size = b"(" + b"".join(_int(n) for n in a.shape) + b"t"
        stride = b"(" + b"".join(_int(s // 4) for s in a.strides) + b"t"
        out += _unicode(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + b"Q" + _int(0) + size + stride + \
            b"\x89ccollections\nOrderedDict\n)RtR"
    return out + b"u."


def _write_pth(path, tensors, headers=None, keys=None):
    with open(path, "wb") as f:
        for h in headers or HEADERS:
            f.write(h if isinstance(h, bytes) else pickle.dumps(h, protocol=2))
        f.write(_state_dict_pickle(tensors))
        f.write(keys if keys is not None else pickle.dumps([str(i) for i in range(len(tensors))], protocol=2))
        for a in tensors.values():
            f.write(struct.pack("<q", a.size) + np.ascontiguousarray(a, "<f4").tobytes())
    return str(path)


def test_hand_written_state_dict_loads(tmp_path):
    """The reader's positive control: the format it refuses to extend is still read exactly."""
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = _write_pth(tmp_path / "ok.pth", {"conv.weight": w, "bn.bias": np.ones(3, np.float32)})
    sd = load_legacy_state_dict(path)
    np.testing.assert_array_equal(sd["conv.weight"], w)
    np.testing.assert_array_equal(sd["bn.bias"], np.ones(3))


@pytest.mark.parametrize("where", ["first header", "storage keys"])
def test_pickle_that_runs_a_command_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2)
    tensors = {"w": np.ones(2, np.float32)}
    if where == "first header":
        path = _write_pth(tmp_path / "evil.pth", tensors, headers=(evil, *HEADERS[1:]))
    else:
        path = _write_pth(tmp_path / "evil.pth", tensors, keys=evil)
    with pytest.raises(TorchFileError) as err:
        load_legacy_state_dict(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(path) and f"refusing to unpickle {os.system.__module__}.system" in msg
    assert not marker.exists()
    pickle.loads(evil)  # the same bytes, unpickled plainly, do run it: the test's control
    assert marker.exists()


def test_state_dict_naming_another_global_is_refused(tmp_path):
    path = _write_pth(tmp_path / "evil.pth", {"w": np.ones(2, np.float32)})
    data = open(path, "rb").read().replace(b"ccollections\nOrderedDict\n)R(", b"cbuiltins\neval\n)R(", 1)
    open(path, "wb").write(data)
    with pytest.raises(TorchFileError, match="refusing to unpickle builtins.eval"):
        load_legacy_state_dict(path)


def test_build_model_refuses_a_hostile_weights_file(tmp_path):
    from landseg.models import build_model

    marker = tmp_path / "pwned"
    path = _write_pth(tmp_path / "evil.pth", {}, headers=(pickle.dumps(_RunsCommand(f"touch {marker}")), *HEADERS[1:]))
    with pytest.raises(TorchFileError) as err:
        build_model("lite_unet", num_classes=2, encoder_weights=path)
    assert "\n" not in str(err.value) and str(err.value).startswith(path) and "refusing to unpickle" in str(err.value)
    assert not marker.exists()
