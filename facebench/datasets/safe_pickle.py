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
(``ndarray((10**9,), "B")``), view one byte as a billion (``strides=(0,)``), a length field can
claim gigabytes, memo references can rebuild one array many times, and a byte per object can
make a deeply nested or very long list. A :class:`Budget` of :data:`EXPANSION` × the pickle's
size + :data:`SLACK` is charged with what every object *will* occupy: each object an opcode
makes (its ``sys.getsizeof``; CPython's shared singletons and small ints take none), each slot
a list, dict, set, the memo or the stack grows by, each payload read, and for an array its
``shape × itemsize`` whether it owns its data or views another buffer (whoever copies it out
will need that much), charged before numpy allocates it. A length beyond what is left of the
file is refused before anything is read, and going over the budget raises
:class:`PickleTooLargeError`. Arrays must be plain data: an array whose elements overlap (a
stride-0 or overlapping view, which a few bytes can make any size) or that holds Python objects
(``dtype=object``) is refused with :class:`RefusedArrayError`, and ``numpy.dtype`` is only
rebuilt from its type string. A reader of the loaded data charges its own copies to the same
budget (:func:`restricted_load` takes a :class:`Budget`). The unpickler is Python's own
(``pickle._Unpickler``) with every opcode metered; an opcode it does not know is refused.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import sys
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


class RefusedArrayError(pickle.UnpicklingError):
    """The pickle builds a numpy array that is not plain data: a view whose elements overlap
    (its memory cannot be bounded by the file) or an array of Python objects."""


#: Memory a pickle may make its objects take, per byte of the pickle, plus :data:`SLACK`. A real
#: data pickle stays far below (an image in a ``.bin`` is charged about 2-4 × its bytes); a
#: crafted one is refused at 6 × its size + 512 KiB, under the 8 × + 1 MiB it may reach
#: in all: charging does not see the allocator's rounding, a table while it doubles, the
#: interpreter's own buffers, or the one payload an opcode reads before it is charged.
EXPANSION = 6
SLACK = 512 << 10


class Budget:
    """The bytes one load may make its objects take: ``limit`` (default :data:`EXPANSION` ×
    ``size`` + :data:`SLACK`) for a pickle of ``size`` bytes. :meth:`charge` is called before
    (or, for an object no larger than what it was read from, as) memory is taken; a reader
    charges the copies it makes of the loaded data to the same budget."""

    def __init__(self, size: int, limit: int | None = None) -> None:
        self.size = size
        self.limit = limit if limit is not None else EXPANSION * size + SLACK
        self.left = self.limit

    def charge(self, n: int, what: str) -> None:
        """Account ``n`` bytes about to be taken by ``what``; refuse beyond the budget."""
        if n > self.left:
            raise PickleTooLargeError(
                f"{what} would allocate {n:,} bytes; a {self.size:,}-byte pickle may allocate "
                f"at most {self.limit:,} in all ({EXPANSION} × its size + {SLACK:,}), "
                f"{self.left:,} of it left; this file is crafted or not a data pickle")
        self.left -= n

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


def _as_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as numpy's pickles give it: a dtype, or its type string (bytes in Python 2)."""
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, str | bytes) and len(dtype) <= 64:
        return np.dtype(dtype.decode("latin-1") if isinstance(dtype, bytes) else dtype)
    raise RefusedArrayError(f"an array's dtype is a {type(dtype).__name__}; numpy pickles give "
                            "a dtype or its type string")


def _array_bytes(shape: Any, dtype: Any) -> int:
    """Bytes an array of ``shape`` and ``dtype`` takes (exact Python ints: no overflow)."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    n = _as_dtype(dtype).itemsize
    for d in dims:
        n *= max(int(d), 0)
    return n


def _dense(a: np.ndarray) -> bool:
    """Whether ``a``'s elements are distinct memory, laid out contiguously in some axis order
    (C, Fortran, or a transpose of either): then its buffer is as large as its data."""
    if a.size <= 1:
        return True
    order = sorted(range(a.ndim), key=lambda k: -a.strides[k])
    return bool(a.transpose(order).flags.c_contiguous)


def _refuse_objects(dtype: np.dtype, what: str) -> None:
    if dtype.hasobject:
        raise RefusedArrayError(f"{what} would hold Python objects (dtype {dtype}); only "
                                "numpy arrays and scalars of numbers or bytes are read")


def check_array(obj: Any, what: str) -> None:
    """Refuse ``obj`` when it is a numpy array that is not plain data (see
    :class:`RefusedArrayError`); anything else passes."""
    if not isinstance(obj, np.ndarray):
        return
    _refuse_objects(obj.dtype, what)
    if not _dense(obj):
        raise RefusedArrayError(
            f"{what} makes a {obj.shape} {obj.dtype} array viewing its memory with strides "
            f"{obj.strides}: its elements overlap (a few bytes viewed as any number), so its "
            "size is not bounded by the file; only contiguous arrays are read")


def _ndarray_bytes(shape: Any, dtype: Any = "f8", *_: Any, **kw: Any) -> int:
    """``ndarray(shape, dtype, buffer, …)``: the array's full size, even as a view of
    ``buffer`` (copying it out takes that much)."""
    return _array_bytes(shape, kw.get("dtype", dtype))


def _frombuffer_bytes(_buf: Any, dtype: Any, shape: Any, *_: Any, **__: Any) -> int:
    return _array_bytes(shape, dtype)


def _dtype_bytes(obj: Any, *_: Any, **__: Any) -> int:
    if not isinstance(obj, str | bytes) or len(obj) > 64:
        raise RefusedArrayError(f"numpy.dtype is only rebuilt from a type string, not from a "
                                f"{type(obj).__name__}")
    return 0


def _scalar_bytes(dtype: Any, *_: Any) -> int:
    """``scalar(dtype, data)``: a numpy scalar of numbers or bytes (never of objects)."""
    d = _as_dtype(dtype)
    _refuse_objects(d, "numpy scalar")
    return d.itemsize


def _items_bytes(items: Any = (), *_: Any) -> int:
    return 8 * len(items) if hasattr(items, "__len__") else 0


def _data_bytes(data: Any = b"", *_: Any) -> int:
    return len(data) if hasattr(data, "__len__") else 0


def _sizers() -> dict[int, Callable[..., int]]:
    """``id(allowed object)`` → bytes a call with these arguments allocates."""
    g = ALLOWED_GLOBALS
    out: dict[int, Callable[..., int]] = {id(np.ndarray): _ndarray_bytes,
                                          id(np.dtype): _dtype_bytes}
    for pkg in ("numpy.core", "numpy._core"):
        out[id(g[(f"{pkg}.multiarray", "_reconstruct")])] = (
            lambda _subtype, shape, dtype, *_: _array_bytes(shape, dtype))
        out[id(g[(f"{pkg}.multiarray", "scalar")])] = _scalar_bytes
        out[id(g[(f"{pkg}.numeric", "_frombuffer")])] = _frombuffer_bytes
    for mod in ("builtins", "__builtin__"):
        out[id(g[(mod, "bytearray")])] = _data_bytes
        out[id(g[(mod, "set")])] = out[id(g[(mod, "frozenset")])] = _items_bytes
    out[id(g[("_codecs", "encode")])] = _data_bytes
    return out


def _footprint(obj: Any) -> int:
    """Bytes a newly made ``obj`` takes (``sys.getsizeof``): none for CPython's shared objects
    (``None``, bools, small ints, empty tuple, one-character strings); an array with its full
    data, even as a view."""
    t = type(obj)
    if (obj is None or t is bool or (t is int and -5 <= obj <= 256)
            or (t in (str, bytes) and len(obj) <= 1) or (t is tuple and not obj)):
        return 0
    if isinstance(obj, np.ndarray):
        return sys.getsizeof(obj) + (0 if obj.flags.owndata else obj.nbytes)
    return sys.getsizeof(obj)


class _Metered:
    """An allowed callable whose every call is first charged to one load's budget (what its
    result will take), and whose array results are checked (:func:`check_array`). It keeps the
    name of what it wraps (for errors) and stands for it as ``_reconstruct``'s subtype."""

    def __init__(self, real: Any, sizer: Callable[..., int], owner: RestrictedUnpickler,
                 key: tuple[str, str]) -> None:
        self.real, self.sizer, self.owner = real, sizer, owner
        self.__module__, self.__qualname__ = key  # as the pickle names it
        self.__name__ = key[1]

    def __call__(self, *args: Any, **kw: Any) -> Any:
        what = f"{self.__module__}.{self.__qualname__}"
        n = self.sizer(*args, **kw)
        self.owner.charge(n, what)
        self.owner.paid += n
        args = tuple(a.real if isinstance(a, _Metered) and a.real is np.ndarray else a
                     for a in args)
        out = self.real(*args, **kw)
        check_array(out, what)
        return out


class _Bounded:
    """A file reader that refuses a length beyond what is left of the file before reading
    (a length field must not make the reader allocate gigabytes first)."""

    #: Reads up to this size are opcodes and length fields, freed at once: not charged.
    SMALL = 64

    def __init__(self, f: IO[bytes], size: int, budget: Budget) -> None:
        self._f, self.left, self.budget = f, size, budget

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        if n > self.left:
            raise PickleTooLargeError(f"a length field claims {n} bytes, but only {self.left} "
                                      "are left in the file (truncated or crafted)")
        if n > self.SMALL:  # a payload or a frame
            self.budget.charge(n, "reading")
        data = self._f.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline(self.left)
        self.left -= len(line)
        return line


def _op(code: bytes) -> int:
    return code[0]


#: Opcodes by what they take: a new object pushed, a reference pushed (a slot), a container grown
#: (where the container is before the opcode runs), the memo grown.
_PUSH_NEW = {_op(c) for c in (
    pickle.EMPTY_TUPLE, pickle.BINBYTES, pickle.SHORT_BINBYTES, pickle.FLOAT, pickle.BINFLOAT,
    pickle.INT, pickle.BININT, pickle.BININT1, pickle.LONG, pickle.BININT2, pickle.NONE,
    pickle.STRING, pickle.BINSTRING, pickle.SHORT_BINSTRING, pickle.UNICODE, pickle.BINUNICODE,
    pickle.EMPTY_LIST, pickle.DICT, pickle.TUPLE, pickle.EMPTY_DICT, pickle.TUPLE1, pickle.TUPLE2,
    pickle.TUPLE3, pickle.NEWTRUE, pickle.NEWFALSE, pickle.LONG1, pickle.LONG4,
    pickle.SHORT_BINUNICODE, pickle.BINUNICODE8, pickle.BINBYTES8, pickle.EMPTY_SET,
    pickle.FROZENSET, pickle.REDUCE, pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.INST, pickle.OBJ,
    pickle.BYTEARRAY8, pickle.READONLY_BUFFER)}
_PUSH_REF = {_op(c) for c in (
    pickle.GET, pickle.BINGET, pickle.LONG_BINGET, pickle.DUP, pickle.GLOBAL, pickle.STACK_GLOBAL,
    pickle.LIST, pickle.EXT1, pickle.EXT2, pickle.EXT4, pickle.PERSID, pickle.BINPERSID,
    pickle.NEXT_BUFFER)}
_GROWS: dict[int, Callable[[Any], Any]] = {
    _op(pickle.APPEND): lambda u: u.stack[-2],
    _op(pickle.SETITEM): lambda u: u.stack[-3],
    **{_op(c): (lambda u: u.metastack[-1][-1])
       for c in (pickle.APPENDS, pickle.SETITEMS, pickle.ADDITEMS)},
    **{_op(c): (lambda u: u.memo)
       for c in (pickle.PUT, pickle.BINPUT, pickle.LONG_BINPUT, pickle.MEMOIZE)},
}
#: Opcodes that take the items above the last ``MARK`` (the whole stack then).
_MARKED = {_op(c) for c in (pickle.APPENDS, pickle.SETITEMS, pickle.ADDITEMS, pickle.TUPLE,
                            pickle.DICT, pickle.FROZENSET, pickle.LIST, pickle.INST, pickle.OBJ)}
#: Opcodes that take nothing lasting (a frame is charged as it is read; ``BUILD`` itself).
_FREE = {_op(c) for c in (pickle.STOP, pickle.POP, pickle.POP_MARK, pickle.PROTO, pickle.FRAME,
                          pickle.BUILD)}
_NAMES = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}
_SLOT = 8
_INT_KEY = sys.getsizeof(2**40)


def _metered(code: int, load: Callable[[Any], None], target: Callable[[Any], Any] | None,
             used: Callable[[Any, Any, int], int]) -> Callable[[Any], None]:
    """``load`` with room reserved first for what it may take while it runs (a table that
    doubles while the old one lives: 4 × the container's size; 64 bytes per item it takes off
    the stack), then charged ``used(unpickler, container, its size before)``."""
    what = _NAMES.get(code, f"opcode {code:#x}")
    marked = code in _MARKED

    def run(u: RestrictedUnpickler) -> None:
        try:
            container = target(u) if target is not None else None
        except IndexError:  # malformed: the handler raises its own error
            load(u)
            return
        before = sys.getsizeof(container) if container is not None else 0
        reserve = 4 * before + 64 * (len(u.stack) if marked else 1)
        u.charge(reserve, what)
        u.paid = 0
        load(u)
        u.meter.left += reserve
        u.charge(used(u, container, before), what)

    return run


def _pushed(u: RestrictedUnpickler, _: Any, __: int) -> int:
    """A new object on the stack: its slot and its size, less what its maker was charged."""
    return _SLOT + max(0, _footprint(u.stack[-1]) - u.paid)


def _grown(u: RestrictedUnpickler, container: Any, before: int) -> int:
    """What a list, dict, set or the memo grew by (and a memo key's int)."""
    return max(0, sys.getsizeof(container) - before) + (_INT_KEY if container is u.memo else 0)


def _meter(code: int, load: Callable[[Any], None]) -> Callable[[Any], None]:
    """``load`` (an opcode's handler) charged for what it takes; an unknown opcode refused."""
    if code in _PUSH_NEW:
        return _metered(code, load, None, _pushed)
    if code in _PUSH_REF:
        return _metered(code, load, None, lambda *_: _SLOT)
    if code in _GROWS:
        return _metered(code, load, _GROWS[code], _grown)
    if code == _op(pickle.MARK):
        return _metered(code, load, None, lambda *_: sys.getsizeof([]) + _SLOT)
    if code in _FREE:
        return load

    def refuse(_: RestrictedUnpickler) -> None:
        raise pickle.UnpicklingError(f"opcode {_NAMES.get(code, hex(code))} is not supported "
                                     "here")

    return refuse


class RestrictedUnpickler(pickle._Unpickler):
    """Python's ``pickle`` unpickler whose ``find_class`` only serves :data:`ALLOWED_GLOBALS`
    and whose every opcode is charged to ``budget`` (see the module docstring)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], *, size: int, encoding: str = "latin1",
                 budget: Budget | int | None = None) -> None:
        self.meter = budget if isinstance(budget, Budget) else Budget(size, budget)
        super().__init__(_Bounded(file, size, self.meter), encoding=encoding)
        self.size = size
        self.paid = 0  # charged by the allowed callable the current opcode called
        self._metered = {key: _Metered(obj, _SIZERS[id(obj)], self, key)
                         for key, obj in ALLOWED_GLOBALS.items() if id(obj) in _SIZERS}

    def charge(self, n: int, what: str) -> None:
        """Account ``n`` bytes about to be allocated for ``what``; refuse beyond the budget."""
        self.meter.charge(n, what)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._metered.get((module, name)) or ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r} not supported")

    def load_build(self) -> None:
        """``BUILD``; an array's ``__setstate__(shape, dtype, …)`` is charged and checked
        first, the array checked after."""
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            if not (isinstance(state, tuple) and len(state) in (4, 5)):
                raise RefusedArrayError("numpy.ndarray.__setstate__ needs (version, shape, "
                                        "dtype, is_fortran, data)")
            dtype = _as_dtype(state[-3])
            self.charge(_array_bytes(state[-4], dtype), "numpy.ndarray.__setstate__")
            _refuse_objects(dtype, "numpy.ndarray.__setstate__")
        pickle._Unpickler.load_build(self)
        check_array(inst, "numpy.ndarray.__setstate__")

    def load_bytearray8(self) -> None:
        """``BYTEARRAY8`` (protocol 5) allocates its length before reading: charged first."""
        (n,) = struct.unpack("<Q", self.read(8))
        self.charge(n, "bytearray")
        self.paid = n
        b = bytearray(n)
        self.readinto(b)
        self.append(b)

    dispatch[_op(pickle.BUILD)] = load_build
    dispatch[_op(pickle.BYTEARRAY8)] = load_bytearray8
    dispatch = {code: _meter(code, load) for code, load in dispatch.items()}


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
                    budget: Budget | int | None = None) -> Any:
    """Unpickle ``fileobj`` allowing only plain data and numpy arrays, with allocations bounded
    by the pickle's size (``budget`` bytes overrides the default bound; a :class:`Budget` is
    charged, and what is left of it can pay for the caller's copies of the data).

    ``encoding="latin1"`` (the default) reads Python 2 pickles too: their byte strings arrive as
    ``str`` and can be turned back with ``.encode("latin-1")``; numpy arrays load unchanged.
    """
    size = _remaining(fileobj)
    if size is None:  # not a plain file: its size is what it holds
        data = fileobj.read()
        fileobj, size = io.BytesIO(data), len(data)
    return RestrictedUnpickler(fileobj, size=size, encoding=encoding, budget=budget).load()


def restricted_loads(data: bytes, *, encoding: str = "latin1",
                     budget: Budget | int | None = None) -> Any:
    """:func:`restricted_load` from a ``bytes`` object."""
    return restricted_load(io.BytesIO(data), encoding=encoding, budget=budget)


_SIZERS = _sizers()

__all__: list[str] = [
    "ALLOWED_GLOBALS",
    "Budget",
    "PickleTooLargeError",
    "RefusedArrayError",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "check_array",
    "restricted_load",
    "restricted_loads",
]
