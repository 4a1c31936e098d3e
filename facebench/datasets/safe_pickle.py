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

Memory is bounded by the file: a few bytes can ask numpy for a gigantic array
(``ndarray((10**9,), "O")``), a length field can claim gigabytes, and memo references can
rebuild one array many times. Every allocation the allowed constructors and ``BUILD`` make is
charged to a budget of :data:`EXPANSION` × the pickle's size + :data:`SLACK` (a real pickle
holds the data of its arrays, so it never comes near it), a length beyond what is left of the
file is refused before anything is allocated, and going over raises
:class:`PickleTooLargeError`. The unpickler is Python's own (``pickle._Unpickler``) with
``BUILD`` and ``BYTEARRAY8`` metered.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from collections.abc import Callable, Mapping
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


class PickleTooLargeError(pickle.UnpicklingError):
    """The pickle asks for more memory than its size can justify; nothing that large was
    allocated."""


#: Memory a pickle may make its objects take, per byte of the pickle (an object array costs
#: 8 bytes per element, each at least one byte in the file), plus :data:`SLACK`.
EXPANSION = 8
SLACK = 1 << 20

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


def _array_bytes(shape: Any, dtype: Any) -> int:
    """Bytes an array of ``shape`` and ``dtype`` takes (exact Python ints: no overflow)."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    n = np.dtype(dtype).itemsize
    for d in dims:
        n *= max(int(d), 0)
    return n


def _ndarray_bytes(shape: Any, dtype: Any = float, buffer: Any = None, *_: Any,
                   **kw: Any) -> int:
    return 0 if buffer is not None or kw.get("buffer") is not None else _array_bytes(
        shape, kw.get("dtype", dtype))


def _items_bytes(items: Any = (), *_: Any) -> int:
    return 8 * len(items) if hasattr(items, "__len__") else 0


def _data_bytes(data: Any = b"", *_: Any) -> int:
    return len(data) if hasattr(data, "__len__") else 0


def _sizers() -> dict[int, Callable[..., int]]:
    """``id(allowed object)`` → bytes a call with these arguments allocates."""
    g = ALLOWED_GLOBALS
    out: dict[int, Callable[..., int]] = {id(np.ndarray): _ndarray_bytes}
    for pkg in ("numpy.core", "numpy._core"):
        out[id(g[(f"{pkg}.multiarray", "_reconstruct")])] = (
            lambda _subtype, shape, dtype, *_: _array_bytes(shape, dtype))
        out[id(g[(f"{pkg}.multiarray", "scalar")])] = lambda dtype, *_: np.dtype(dtype).itemsize
    for mod in ("builtins", "__builtin__"):
        out[id(g[(mod, "bytearray")])] = _data_bytes
        out[id(g[(mod, "set")])] = out[id(g[(mod, "frozenset")])] = _items_bytes
    out[id(g[("_codecs", "encode")])] = _data_bytes
    return out


class _Metered:
    """An allowed callable whose every call is first charged to one load's budget. It keeps
    the name of what it wraps (for errors) and stands for it as ``_reconstruct``'s subtype."""

    def __init__(self, real: Any, sizer: Callable[..., int], owner: RestrictedUnpickler) -> None:
        self.real, self.sizer, self.owner = real, sizer, owner
        self.__module__ = getattr(real, "__module__", "")
        self.__qualname__ = getattr(real, "__qualname__", repr(real))

    def __call__(self, *args: Any, **kw: Any) -> Any:
        self.owner.charge(self.sizer(*args, **kw), f"{self.__module__}.{self.__qualname__}")
        args = tuple(a.real if isinstance(a, _Metered) and a.real is np.ndarray else a
                     for a in args)
        return self.real(*args, **kw)


class _Bounded:
    """A file reader that refuses a length beyond what is left of the file before reading
    (a length field must not make the reader allocate gigabytes first)."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        if n > self.left:
            raise PickleTooLargeError(f"a length field claims {n} bytes, but only {self.left} "
                                      "are left in the file (truncated or crafted)")
        data = self._f.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline(self.left)
        self.left -= len(line)
        return line


class RestrictedUnpickler(pickle._Unpickler):
    """Python's ``pickle`` unpickler whose ``find_class`` only serves :data:`ALLOWED_GLOBALS`
    and whose allocations are charged to ``budget`` bytes (see the module docstring)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], *, size: int, encoding: str = "latin1",
                 budget: int | None = None) -> None:
        super().__init__(_Bounded(file, size), encoding=encoding)
        self.size = size
        self.budget = budget if budget is not None else EXPANSION * size + SLACK
        self.left = self.budget
        self._metered = {key: _Metered(obj, _SIZERS[id(obj)], self)
                         for key, obj in ALLOWED_GLOBALS.items() if id(obj) in _SIZERS}

    def charge(self, n: int, what: str) -> None:
        """Account ``n`` bytes about to be allocated for ``what``; refuse beyond the budget."""
        if n > self.left:
            raise PickleTooLargeError(
                f"{what} would allocate {n:,} bytes; a {self.size:,}-byte pickle may allocate "
                f"at most {self.budget:,} in all ({EXPANSION} × its size + {SLACK:,}), "
                f"{self.left:,} of it left; this file is crafted or not a data pickle")
        self.left -= n

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._metered.get((module, name)) or ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r} not supported")

    def load_build(self) -> None:
        """``BUILD``; an array's ``__setstate__(shape, dtype, …)`` is charged first."""
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray) and isinstance(state, tuple) and len(state) in (4, 5):
            self.charge(_array_bytes(state[-4], state[-3]), "numpy.ndarray.__setstate__")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def load_bytearray8(self) -> None:
        """``BYTEARRAY8`` (protocol 5) allocates its length before reading: charged first."""
        (n,) = struct.unpack("<Q", self.read(8))
        self.charge(n, "bytearray")
        b = bytearray(n)
        self.readinto(b)
        self.append(b)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def _remaining(fileobj: IO[bytes]) -> int | None:
    """Bytes from the current position to the end of a seekable file, else ``None``."""
    try:
        here = fileobj.tell()
        end = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return end - here


def restricted_load(fileobj: IO[bytes], *, encoding: str = "latin1",
                    budget: int | None = None) -> Any:
    """Unpickle ``fileobj`` allowing only plain data and numpy arrays, with allocations bounded
    by the pickle's size (``budget`` bytes overrides the default bound).

    ``encoding="latin1"`` (the default) reads Python 2 pickles too: their byte strings arrive as
    ``str`` and can be turned back with ``.encode("latin-1")``; numpy arrays load unchanged.
    """
    size = _remaining(fileobj)
    if size is None:  # not a plain file: its size is what it holds
        data = fileobj.read()
        fileobj, size = io.BytesIO(data), len(data)
    return RestrictedUnpickler(fileobj, size=size, encoding=encoding, budget=budget).load()


def restricted_loads(data: bytes, *, encoding: str = "latin1", budget: int | None = None) -> Any:
    """:func:`restricted_load` from a ``bytes`` object."""
    return restricted_load(io.BytesIO(data), encoding=encoding, budget=budget)


_SIZERS = _sizers()

__all__: list[str] = [
    "ALLOWED_GLOBALS",
    "PickleTooLargeError",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "restricted_load",
    "restricted_loads",
]
