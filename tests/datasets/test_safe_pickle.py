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

from facebench.datasets.safe_pickle import UnsafePickleError, restricted_loads


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
