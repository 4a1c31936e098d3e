"""Ordered, streamed work over chunks of a list — in a spawn process pool or inline."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
Job = tuple[int, list[Any]]


def chunks(items: Sequence[T], size: int) -> list[tuple[int, list[T]]]:
    """``(start, items[start:start+size])`` for consecutive chunks."""
    return [(i, list(items[i:i + size])) for i in range(0, len(items), size)]


def ordered_map(work: Callable[[Job], list[T]], jobs: list[Job], workers: int,
                initializer: Callable[..., None], initargs: tuple[Any, ...],
                inline_initargs: tuple[Any, ...] | None = None) -> Iterator[T]:
    """Yield the results of ``work`` over ``jobs`` flattened, in job order.

    ``workers > 1`` runs a spawn pool (each process set up by ``initializer(*initargs)``) and
    streams results as the earliest jobs finish; ``workers <= 1`` runs inline in this process,
    set up with ``inline_initargs`` (default: the same ``initargs``)."""
    if workers <= 1:
        initializer(*(initargs if inline_initargs is None else inline_initargs))
        for job in jobs:
            yield from work(job)
        return
    with mp.get_context("spawn").Pool(workers, initializer=initializer,
                                      initargs=initargs) as pool:
        for results in pool.imap(work, jobs):
            yield from results
