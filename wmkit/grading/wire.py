"""What travels between the grader and the learner's kernel, and how it is made safe.

To the kernel: the inputs of one call (models, tensors, agents), pickled by the grader. Back
from the kernel: only plain data, loaded with `torch.load(weights_only=True)`, which builds
tensors, numbers, strings and containers and nothing else, so a hostile kernel cannot make
the grader run code by what it sends back. Objects the learner's function returns (a
`Rollout`, say) travel as their type name and public attributes, and come back as a look-alike
with the same attributes (`type(x).__name__` is kept for messages).
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
import io
import re
from typing import Any

import torch

MAX_BYTES = 64 * 2**20
"""The largest answer the grader accepts from a kernel for one call."""
MAX_DEPTH = 6
MAX_ITEMS = 10_000


def pack(value: Any) -> str:
    """`value` pickled by torch.save and base64-encoded (grader -> kernel: trusted data)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def unpack_trusted(text: str) -> Any:
    """The inverse of `pack`, in the kernel (it runs whatever the grader sent: the grader's)."""
    return torch.load(io.BytesIO(base64.b64decode(text)), weights_only=False)


def pack_plain(value: Any) -> str:
    """`to_plain(value)` saved for the trip back to the grader."""
    return pack(to_plain(value))


def unpack_plain(text: str) -> Any:
    """Load what a kernel sent back: plain data only, and at most MAX_BYTES of it."""
    if len(text) > MAX_BYTES * 4 // 3 + 8:
        raise ValueError(f"the answer is larger than {MAX_BYTES // 2**20} MiB")
    return from_plain(torch.load(io.BytesIO(base64.b64decode(text)), weights_only=True))


# -- plain data ---------------------------------------------------------------------------------


def to_plain(value: Any, depth: int = 0) -> Any:
    """`value` as tensors, numbers, strings, None, lists, tuples and dicts (tagged when they
    stand for something else: an object, a numpy value, an exception, an unsendable thing)."""
    if depth > MAX_DEPTH:
        return {"__unsent__": type(value).__name__}
    if value is None or isinstance(value, (bool, int, float, complex, str)):
        return value
    if isinstance(value, torch.Tensor):
        plain = value.detach().cpu().clone()
        if value.requires_grad and plain.is_floating_point():
            plain.requires_grad_(True)  # a leaf now; the flag tells "it carried a gradient"
        return plain
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "dtype"):
        if getattr(value, "ndim", 0) == 0:
            return {"__numpy__": str(value.dtype), "value": value.item()}
        return {"__ndarray__": torch.from_numpy(value.copy())}
    if isinstance(value, BaseException):
        return {"__error__": type(value).__name__, "message": str(value)[:2000],
                "code": getattr(value, "code", None) if isinstance(value, SystemExit) else None}
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int)) else repr(k)[:100]: to_plain(v, depth + 1)
                for k, v in list(value.items())[:MAX_ITEMS]}
    if dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
        attrs = ({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
                 if dataclasses.is_dataclass(value) else vars(value))
        return {"__object__": type(value).__name__,
                "attrs": {k: to_plain(v, depth + 1) for k, v in list(attrs.items())[:100]
                          if isinstance(k, str) and not k.startswith("__")
                          and not isinstance(v, torch.nn.Module)}}
    return {"__unsent__": type(value).__name__}


class Returned:
    """What an object returned by the learner's function looks like in the grader."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.__dict__.update(attrs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.__dict__)})"


_returned_types: dict[str, type] = {}


def _returned_type(name: str) -> type:
    name = re.sub(r"\W", "_", str(name))[:60] or "object"
    if name not in _returned_types:
        _returned_types[name] = type(name, (Returned,), {})
    return _returned_types[name]


class RemoteError(Exception):
    """An exception the learner's function raised in the kernel, of a type not rebuilt here."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


def rebuild_error(name: str, message: str, code: Any = None) -> BaseException:
    """The learner's exception: builtin types are rebuilt (so `except ValueError` works in a
    check), other types become a RemoteError carrying the type's name."""
    cls = getattr(builtins, str(name), None)
    if isinstance(cls, type) and issubclass(cls, BaseException) and \
            cls not in (KeyboardInterrupt, GeneratorExit):
        try:
            return cls(code) if cls is SystemExit else cls(message)
        except Exception:  # noqa: BLE001  (a builtin that wants other arguments)
            pass
    return RemoteError(str(name)[:100], message)


def from_plain(value: Any) -> Any:
    """The grader's view of plain data from a kernel (see `to_plain`)."""
    if isinstance(value, list):
        return [from_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(from_plain(v) for v in value)
    if isinstance(value, dict):
        if "__object__" in value and isinstance(value.get("attrs"), dict):
            return _returned_type(value["__object__"])(
                {str(k): from_plain(v) for k, v in value["attrs"].items()})
        if "__numpy__" in value:
            import numpy as np

            return np.dtype(str(value["__numpy__"])).type(value["value"])
        if "__ndarray__" in value and isinstance(value["__ndarray__"], torch.Tensor):
            return value["__ndarray__"].numpy()
        if "__unsent__" in value:
            return _returned_type(str(value["__unsent__"]))({})
        if "__error__" in value:
            return rebuild_error(value["__error__"], str(value.get("message", "")),
                                 value.get("code"))
        return {k: from_plain(v) for k, v in value.items()}
    return value
