"""Read a PyTorch state dict into numpy arrays without importing torch.

The pretrained encoders' weights ship as legacy (pre-zip) ``torch.save`` files. Converting them
must not need torch, a 700 MB dependency, so this reads the format directly: three header
pickles (magic number, protocol version, system info), the state-dict pickle whose tensors refer
to storages by key, a pickle listing the storage keys, then each storage as an int64 element
count followed by its raw little-endian bytes.

A pickle can call any importable function while it loads, so a crafted ``.pth`` could run a
command. Every pickle in the file therefore goes through one restricted unpickler whose
allow-list is the least the format needs: the headers and the key list need no global at all
(ints, strings, dicts, lists), the state dict only ``torch._utils._rebuild_tensor_v2`` (read as a
reference into a storage), the ``torch.*Storage`` type names and ``collections.OrderedDict``.
Anything else raises ``TorchFileError`` naming the file and the refused global.
"""

from __future__ import annotations

import collections
import pickle
from typing import Any, BinaryIO

import numpy as np

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
_MAGIC, _PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


class TorchFileError(ValueError):
    """The file is not a legacy torch.save state dict this reader understands, or is hostile."""


class _TensorRef:
    def __init__(self, storage_key: str, offset: int, size: tuple, stride: tuple):
        self.key, self.offset, self.size, self.stride = storage_key, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _TensorRef(storage, offset, size, stride)


# The globals a state-dict pickle may name; the other pickles of the file may name none.
_STATE_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): name for name in _DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``allowed``; storages only where ``storages`` is given."""

    def __init__(self, f: BinaryIO, path: str, allowed: dict, storages: dict | None = None):
        super().__init__(f)
        self.path, self.allowed, self.storages = path, allowed, storages

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise TorchFileError(f"{self.path}: refusing to unpickle {module}.{name}: "
                                 f"not part of a plain torch state dict") from None

    def persistent_load(self, pid):
        if self.storages is None:
            raise TorchFileError(f"{self.path}: unexpected storage reference outside the state dict")
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and pid[1] in _DTYPES
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise TorchFileError(f"{self.path}: malformed storage reference {pid!r:.80}")
        _, storage_type, key, _location, numel, _view = pid
        self.storages[key] = (np.dtype(_DTYPES[storage_type]), int(numel))
        return key


def _load(f: BinaryIO, path: str, what: str, expected: type, allowed=None, storages=None):
    """One pickle of the file through the restricted unpickler, checked to be of type ``expected``."""
    try:
        value = _RestrictedUnpickler(f, path, allowed or {}, storages).load()
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise TorchFileError(f"{path}: not a legacy torch state dict ({what}: {e})") from None
    if not isinstance(value, expected):
        raise TorchFileError(f"{path}: not a legacy torch state dict ({what} is a {type(value).__name__})")
    return value


def load_legacy_state_dict(path: str) -> dict[str, np.ndarray]:
    """{name: array} of a legacy ``torch.save(state_dict)`` file (what the encoder wheels ship)."""
    storages: dict[str, tuple[np.dtype, int]] = {}
    with open(path, "rb") as f:
        if _load(f, path, "magic number", int) != _MAGIC:
            raise TorchFileError(f"{path}: not a legacy torch file (wrong magic number)")
        if _load(f, path, "protocol version", int) != _PROTOCOL:
            raise TorchFileError(f"{path}: unsupported legacy torch protocol version")
        _load(f, path, "system info", dict)
        state = _load(f, path, "state dict", dict, _STATE_GLOBALS, storages)
        keys = _load(f, path, "storage keys", list)
        if not all(isinstance(k, str) for k in keys):
            raise TorchFileError(f"{path}: storage keys are not all strings")
        data = {}
        for key in keys:
            if key not in storages:
                raise TorchFileError(f"{path}: storage {key!r} is not referenced by the state dict")
            dtype, numel = storages[key]
            head = f.read(8)
            count = int(np.frombuffer(head, "<i8")[0]) if len(head) == 8 else -1
            if count != numel:
                raise TorchFileError(f"{path}: storage {key} holds {count} elements, expected {numel}")
            raw = f.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise TorchFileError(f"{path}: storage {key} is truncated")
            data[key] = np.frombuffer(raw, dtype.newbyteorder("<"))
    out = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef) or ref.key not in data:
            raise TorchFileError(f"{path}: entry {name!r} is not a tensor of a stored storage")
        flat = data[ref.key]
        last = ref.offset + sum((n - 1) * st for n, st in zip(ref.size, ref.stride) if n > 0)
        if ref.offset < 0 or min(ref.stride, default=0) < 0 or (0 not in ref.size and last >= flat.size):
            raise TorchFileError(f"{path}: entry {name!r} reaches outside its storage")  # as_strided does not check
        itemsize = flat.dtype.itemsize
        out[name] = np.lib.stride_tricks.as_strided(flat[ref.offset:], ref.size,
                                                    [s * itemsize for s in ref.stride]).copy()
    return out
