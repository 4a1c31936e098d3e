"""Numeric field types with sane bounds for suite files (pydantic; stated in the JSON Schema).

Pydantic's lax mode reads YAML ``true`` as the number 1 and accepts ``.nan``/``.inf`` for floats;
a suite number is never a boolean and never infinite. Strings still parse (``${VAR}`` values are
strings after interpolation), so ``max_folds: ${LFW_FOLDS:-10}`` keeps working.

Put ``Field`` constraints *before* :data:`NO_BOOL` inside ``Annotated``, and bound an optional
field inside its ``Annotated`` (``ThreadCount | None``), never with ``Field`` on ``Count | None``:
otherwise pydantic writes the bounds into the JSON Schema under non-standard keys.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

#: Largest batch of a latency sweep or an embedding pass.
MAX_BATCH = 4096
#: Smallest and largest side (pixels) of a model input or an aligned crop.
MIN_SIDE, MAX_SIDE = 16, 2048
#: Largest embedding a zoo architecture may be built with (VGG-Face's 4096 is the widest common).
MAX_EMBEDDING = 4096
#: Threads of one engine, and processes of one acquisition pool.
MAX_THREADS, MAX_WORKERS = 1024, 256
#: Bootstrap resamples (seeded 95 % CIs; 1000–10000 is usual).
MAX_BOOTSTRAP = 100_000
#: Folds of a k-fold protocol (LFW View 2 has 10).
MAX_FOLDS = 100
#: Most rows a listing returns (``facebench history --limit``).
MAX_LIST = 100_000
#: Seeds: what numpy's generators take without surprises.
MAX_SEED = 2**32 - 1
#: Model, device and protocol ids (a cell's id joins three with ``@``; its folder is its id).
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
MAX_ID_LENGTH = 80


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def _two_folds_or_more(value: Any) -> Any:
    value = _not_bool(value)
    try:
        n = int(value) if isinstance(value, int | str) else None
    except ValueError:
        return value  # not a number: the int parser reports it
    if n is not None and n < 2:
        raise ValueError("k-fold cross-validation needs at least 2 folds: each fold's threshold "
                         "is chosen on the other folds, so one fold has none; use 2 or more")
    return value


#: Rejects booleans before pydantic's number parsing.
NO_BOOL = BeforeValidator(_not_bool)

#: An integer (never a boolean); bound it with ``Field(ge=…, le=…)`` at the field.
Count = Annotated[int, NO_BOOL]
#: A finite float (never a boolean, NaN or ±inf); bound it with ``Field(…)`` at the field.
Real = Annotated[float, Field(allow_inf_nan=False), NO_BOOL]
#: Threads of one engine pool.
ThreadCount = Annotated[int, Field(ge=1, le=MAX_THREADS), NO_BOOL]
#: Size of an embedding.
EmbeddingSize = Annotated[int, Field(gt=0, le=MAX_EMBEDDING), NO_BOOL]
#: A finite number in [0, 1].
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), NO_BOOL]
#: A finite number >= 0.
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False), NO_BOOL]
#: A finite fraction in [0, 100] (a relative change; 1 = 100 %).
Ratio = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), NO_BOOL]
#: One batch size.
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH), NO_BOOL]
#: One side of an image (pixels).
Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE), NO_BOOL]
#: A number of folds for k-fold cross-validation (>= 2: a fold's threshold comes from the others).
FoldCount = Annotated[int, Field(ge=2, le=MAX_FOLDS), BeforeValidator(_two_folds_or_more)]
#: A random seed.
Seed = Annotated[int, Field(ge=0, le=MAX_SEED), NO_BOOL]
