"""A restricted unpickler for data files: plain containers, bytes and numpy arrays only.

``pickle.load`` runs whatever callable a file names (``os.system``, ``builtins.eval``, …), so an
untrusted pickle must never reach it. :func:`restricted_load` resolves globals through an
explicit allow-list and raises :class:`UnsafePickleError` naming any other global *before* it is
imported or called. Built-in opcodes still give ``bytes``, ``str``, ``int``, ``float``, ``bool``,
``None``, lists, tuples, dicts and sets; the allow-list adds what numpy (1.x and 2.x) writes for
arrays and scalars, ``_codecs.encode`` restricted to latin-1 (how protocol ≤ 2 stores bytes), and
``bytearray``/``set``/``frozenset`` restricted to plain data arguments (how protocol ≤ 4 stores
them). An object pickled with protocol 0/1 (``copyreg._reconstructor``) is refused naming its
class.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from types import MappingProxyType
from typing import IO, Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allow-list; nothing was imported or called."""

    def __init__(self, module: str, name: str) -> None:
        self.global_name = f"{module}.{name}" if module else name
        super().__init__(
            f"forbidden global {self.global_name!r}: only bytes, str, numbers, bools, lists, "
            "tuples, dicts and numpy arrays may be unpickled here (no arbitrary objects or "
            "callables)"
        )


_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso8859_1", "l1"}


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol ≤ 2 uses it for bytes: text → latin-1 bytes, nothing else
    (no codec lookup, so no codec module is ever imported)."""
    if not isinstance(obj, str) or not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
        raise pickle.UnpicklingError(
            f"_codecs.encode is only allowed as str → latin-1 bytes, got encoding {encoding!r}"
        )
    return obj.encode("latin-1", "strict")


def _bytearray(data: Any = b"", encoding: str | None = None) -> bytearray:
    """``bytearray`` as pickles rebuild it: from bytes, or from latin-1 text (protocol ≤ 2)."""
    if isinstance(data, bytes) and encoding is None:
        return bytearray(data)
    if isinstance(data, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1:
        return bytearray(data, "latin-1")
    raise pickle.UnpicklingError("bytearray is only allowed from bytes or latin-1 text")


def _plain(kind: type[set[Any]] | type[frozenset[Any]]) -> Any:
    def make(items: Any = ()) -> set[Any] | frozenset[Any]:
        if not isinstance(items, list | tuple | set | frozenset):
            raise pickle.UnpicklingError(f"{kind.__name__} is only allowed from a list of items")
        return kind(items)

    return make


def _refuse_reconstructor(cls: Any, *_: Any) -> Any:
    """``copyreg._reconstructor`` rebuilds arbitrary objects (protocol 0/1): always refused."""
    name = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"
    raise UnsafePickleError("", f"{name} (via copyreg._reconstructor)")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2 (numpy.core is a shim)
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric

    found: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for pkg in ("numpy.core", "numpy._core"):  # files written by numpy 1.x and 2.x
        found[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        found[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        found[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    return found


#: ``(module, name)`` → the object it resolves to (read-only). Nothing outside it is imported.
ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType({
    ("_codecs", "encode"): _latin1_encode,
    **{(mod, name): obj for mod in ("builtins", "__builtin__") for name, obj in (
        ("bytearray", _bytearray), ("set", _plain(set)), ("frozenset", _plain(frozenset)))},
    # Resolved only to be refused when called, so that the class named next is reported.
    **{(mod, "_reconstructor"): _refuse_reconstructor for mod in ("copyreg", "copy_reg")},
    **_numpy_globals(),
})


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only serves :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r} not supported")


def restricted_load(fileobj: IO[bytes], *, encoding: str = "latin1") -> Any:
    """Unpickle ``fileobj`` allowing only plain data and numpy arrays.

    ``encoding="latin1"`` (the default) reads Python 2 pickles too: their byte strings arrive as
    ``str`` and can be turned back with ``.encode("latin-1")``; numpy arrays load unchanged.
    """
    return RestrictedUnpickler(fileobj, encoding=encoding).load()


def restricted_loads(data: bytes, *, encoding: str = "latin1") -> Any:
    """:func:`restricted_load` from a ``bytes`` object."""
    return restricted_load(io.BytesIO(data), encoding=encoding)


__all__: list[str] = [
    "ALLOWED_GLOBALS",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "restricted_load",
    "restricted_loads",
]
