"""Restricted unpickling: plain data and numpy arrays load; any other global is refused
before it is imported or called."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facebench.datasets.safe_pickle import (
    PickleTooLargeError,
    RefusedArrayError,
    UnsafePickleError,
    restricted_loads,
)


class Thing:
    """An arbitrary class: its instances must never be rebuilt from a data file."""

    def __init__(self) -> None:
        self.x = 1


class RunsCommand:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


class OpensFile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.target), "w"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_data_and_arrays_round_trip(protocol: int) -> None:
    data = {
        "bytes": [b"\xff\xd8\x00jpeg", bytearray(b"ab")],
        "nums": (1, 2.5, -3, None, True, False, 10**30),
        "text": "é",
        "set": {1, 2},
        "u8": np.frombuffer(b"\x00\x01\xff", np.uint8),
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3).T,
        "bools": np.array([True, False]),
        "scalar": np.int64(7),
        "flag": np.bool_(True),
    }
    out = restricted_loads(pickle.dumps(data, protocol=protocol))
    assert out.keys() == data.keys()
    for k, v in data.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(out[k], v)
            assert out[k].dtype == v.dtype
        else:
            assert out[k] == v


@pytest.mark.parametrize("payload", [RunsCommand, OpensFile])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_code_payload_refused_before_running(tmp_path: Path, payload: type,
                                             protocol: int) -> None:
    target = tmp_path / "pwned"
    data = pickle.dumps([b"ok", payload(target)], protocol=protocol)
    with pytest.raises(UnsafePickleError) as err:
        restricted_loads(data)
    assert err.value.global_name in ("posix.system", "nt.system", "builtins.open", "io.open")
    assert err.value.global_name in str(err.value)
    assert not target.exists()


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_class_instance_refused_naming_the_class(protocol: int) -> None:
    with pytest.raises(UnsafePickleError) as err:
        restricted_loads(pickle.dumps((b"x", Thing()), protocol=protocol))
    assert err.value.global_name == f"{Thing.__module__}.Thing"
    assert f"'{Thing.__module__}.Thing'" in str(err.value)


def test_reconstructor_of_an_allowed_class_is_still_refused() -> None:
    data = b"ccopy_reg\n_reconstructor\n(cnumpy\nndarray\nc__builtin__\nobject\nNtR."
    with pytest.raises(UnsafePickleError, match="builtins.object|__builtin__.object"):
        restricted_loads(data)
    data = b"ccopy_reg\n_reconstructor\n(cnumpy\nndarray\ncnumpy\nndarray\nNtR."
    with pytest.raises(UnsafePickleError, match="numpy.ndarray.*copyreg._reconstructor"):
        restricted_loads(data)


@pytest.mark.parametrize(
    "obj", [eval, exec, getattr, os.system, subprocess.Popen, __import__, pickle.loads]
)
def test_dangerous_globals_refused(obj: Any) -> None:
    with pytest.raises(UnsafePickleError) as err:
        restricted_loads(pickle.dumps(obj, protocol=4))
    assert obj.__name__ in err.value.global_name


def test_unknown_module_is_never_imported() -> None:
    data = b"cfacebench_no_such_module_xyz\nboom\n."
    with pytest.raises(UnsafePickleError, match="facebench_no_such_module_xyz.boom"):
        restricted_loads(data)
    assert "facebench_no_such_module_xyz" not in sys.modules


def test_bytearray_and_set_only_from_plain_data() -> None:
    for proto in (0, 2, 3):
        assert restricted_loads(pickle.dumps(bytearray(b"\xffa"), proto)) == bytearray(b"\xffa")
        assert restricted_loads(pickle.dumps({1, 2}, proto)) == {1, 2}
    huge = b"c__builtin__\nbytearray\n(I99999999999\ntR."
    with pytest.raises(pickle.UnpicklingError, match="bytearray"):
        restricted_loads(huge)


def test_codecs_encode_only_latin1() -> None:
    assert restricted_loads(pickle.dumps(b"\xff\x00", protocol=2)) == b"\xff\x00"
    evil = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(pickle.UnpicklingError, match="latin-1"):
        restricted_loads(evil)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_dense_arrays_in_any_axis_order_load(protocol: int) -> None:
    """Transposed, Fortran-order and sliced arrays are plain data (numpy pickles them whole or
    as a transpose of a contiguous buffer): they load unchanged."""
    for a in (np.arange(24, dtype=np.float32).reshape(2, 3, 4).transpose(1, 0, 2),
              np.arange(24).reshape(2, 3, 4)[:, ::2], np.arange(6)[::-1],
              np.asfortranarray(np.arange(6.0).reshape(2, 3))):
        out = restricted_loads(pickle.dumps(a, protocol=protocol))
        np.testing.assert_array_equal(out, a)


def _ndarray_call(args: bytes) -> bytes:
    return b"\x80\x04cnumpy\nndarray\n(" + args + b"tR."


def test_overlapping_view_and_object_array_are_refused() -> None:
    stride0 = _ndarray_call(b"(K\x08tX\x01\x00\x00\x00BC\x01xK\x00(K\x00t")
    with pytest.raises(RefusedArrayError, match=r"strides \(0,\): its elements overlap"):
        restricted_loads(stride0)
    objects = _ndarray_call(b"(K\x08tX\x01\x00\x00\x00O")
    with pytest.raises(RefusedArrayError, match="would hold Python objects"):
        restricted_loads(objects)
    assert pickle.loads(stride0).strides == (0,)  # what numpy itself would have built


def test_a_view_is_charged_its_full_size() -> None:
    """One byte viewed as 2**40 is charged 2**40 bytes, refused before numpy is called."""
    view = _ndarray_call(b"(\x8a\x06\x00\x00\x00\x00\x00\x01tX\x01\x00\x00\x00BC\x01xK\x00"
                         b"(K\x00t")
    with pytest.raises(PickleTooLargeError, match="would allocate 1,099,511,627,776 bytes"):
        restricted_loads(view)


def test_dtype_only_from_its_type_string() -> None:
    nested = b"\x80\x04cnumpy\ndtype\n(](X\x01\x00\x00\x00aX\x02\x00\x00\x00u1\x86etR."
    assert pickle.loads(nested) == np.dtype([("a", "u1")])
    with pytest.raises(RefusedArrayError, match="only rebuilt from a type string"):
        restricted_loads(nested)


class _Call:
    """Pickles as ``func(*args)`` (how a crafted file can call an allowed global)."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def test_scalar_of_objects_is_refused() -> None:
    from numpy._core.multiarray import scalar

    for dtype in (np.dtype("O"), np.dtype([("a", "O")])):
        data = pickle.dumps(_Call(scalar, dtype, b"\x00" * 8), protocol=4)
        with pytest.raises(RefusedArrayError, match="numpy scalar would hold Python objects"):
            restricted_loads(data)
