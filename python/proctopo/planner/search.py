"""Which orders are ranked, and in what order: every order of a few axes, or a bounded search over subsets.

An axis's cost depends only on its stride, the product of the sizes of the axes
faster than it: on the *set* of faster axes, not on their order. So the cheapest
way to place the axes not in a set ``S`` around the fast axes ``S`` is a dynamic
programme over the ``2**k`` subsets of the ``k`` axes of size > 1 (vectorised with
NumPy, one pass per subset size), and with that exact completion cost as its
heuristic a best-first search pops complete orders cheapest first, never expanding
a partial order that is not the start of one it returns: at most ``top * k`` pops
and ``top * k * k`` pushes. A second pass of the same programme counts the orders
that tie with the best. Time and memory are O(2**k * k) whatever the world size,
and the number of axes is capped at :data:`MAX_AXES`. The programme needs each axis's cost
at every stride the other axes can give it (``k * 2**(k-1)`` of them when no two subsets
share a product): an evaluator with a ``many(i, strides)`` method is asked once per axis,
for arrays; a plain ``evaluate(i, stride)`` is asked once per distinct stride.

Orders are compared by (exposed time, tie-break measure, conventional order): the
first two are exact integers (:class:`~proctopo.planner.model.Costing`), the last is
the sequence of each axis's place in the stack's conventional order, fastest first.
Equal exposed times share one rank number.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..errors import InvalidArgumentError

__all__ = ["FULL_SEARCH_AXES", "MAX_AXES", "MAX_TOP"]

#: Up to this many axes of size > 1, every order is ranked (at most 720); beyond, the
#: best ``top`` orders are found by the search over subsets.
FULL_SEARCH_AXES = 6
#: The most axes of size > 1 a plan takes (the search over subsets holds 2**16 sets).
MAX_AXES = 16
#: The most layouts a plan keeps.
MAX_TOP = 1000
#: Layouts kept by default beyond :data:`FULL_SEARCH_AXES` axes.
DEFAULT_TOP = 20

Evaluate = Callable[[int, int], "tuple[int, int]"]


class Ranked(NamedTuple):
    """An order and its place: ``order`` fastest first (axes of size > 1, as indices)."""

    order: tuple[int, ...]
    key: int
    tight: int
    rank: int
    ties: int
    exact: bool


def check_top(top: int | None) -> None:
    if top is not None and top > MAX_TOP:
        raise InvalidArgumentError(f"top must be at most {MAX_TOP}, got {top}")


def check_axes(k: int) -> None:
    if k > MAX_AXES:
        raise InvalidArgumentError(
            f"{k} axes of size > 1 are too many to plan (at most {MAX_AXES}): "
            "the search holds 2**k sets of axes"
        )


def _assign_ranks(
    ordered: list[tuple[tuple[int, ...], int, int]], best_ties: int | None, complete: bool
) -> list[Ranked]:
    """Competition ranks by key; ``complete``: every order is in ``ordered`` (all counts exact)."""
    out: list[Ranked] = []
    i = 0
    before = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][1] == ordered[i][1]:
            j += 1
        size = j - i
        exact = complete or j < len(ordered)  # a group followed by another is whole
        if before == 0 and best_ties is not None:
            size, exact = best_ties, True
        for order, key, tight in ordered[i:j]:
            out.append(Ranked(order, key, tight, before + 1, size if exact else j - i, exact))
        before += size
        i = j
    return out


def rank_all(
    sizes: Sequence[int],
    evaluate: Evaluate,
    conv: Sequence[int],
    orders: Sequence[tuple[int, ...]] | None = None,
) -> list[Ranked]:
    """Every order (or the ones given) of the axes, fastest first, ranked."""
    k = len(sizes)
    cache: dict[tuple[int, int], tuple[int, int]] = {}

    def cost(order: tuple[int, ...]) -> tuple[int, int]:
        stride, key, tight = 1, 0, 0
        for i in order:
            hit = cache.get((i, stride))
            if hit is None:
                hit = cache[(i, stride)] = evaluate(i, stride)
            key += hit[0]
            tight += hit[1]
            stride *= sizes[i]
        return key, tight

    chosen = list(orders) if orders is not None else list(itertools.permutations(range(k)))
    return rank_scored([(order, *cost(order)) for order in chosen], conv)


def rank_scored(scored: Sequence[tuple[tuple[int, ...], int, int]], conv: Sequence[int]) -> list[Ranked]:
    """Orders with their ranking integers, sorted and ranked (every order there is is given)."""
    ordered = sorted(scored, key=lambda x: (x[1], x[2], tuple(conv[i] for i in x[0])))
    return _assign_ranks(ordered, None, True)


def rank_best(sizes: Sequence[int], evaluate: Evaluate, conv: Sequence[int], top: int) -> list[Ranked]:
    """The ``top`` best orders of the axes, fastest first, by the search over subsets (module docstring)."""
    import numpy as np

    k = len(sizes)
    check_axes(k)
    n = 1 << k
    full = n - 1
    masks = np.arange(n, dtype=np.int64)
    prod = np.ones(n, dtype=np.int64)
    for i in range(k):
        prod.reshape(-1, 2, 1 << i)[:, 1, :] *= sizes[i]
    big = np.iinfo(np.int64).max // 4
    ckey = np.zeros((k, n), dtype=np.int64)
    ctight = np.zeros((k, n), dtype=np.int64)
    many = getattr(evaluate, "many", None)  # an evaluator that answers for many strides at once
    for i in range(k):
        without = masks[(masks >> i) & 1 == 0]
        strides, inverse = np.unique(prod[without], return_inverse=True)
        if many is not None:
            keys, tights = many(i, strides)
        else:
            values = [evaluate(i, int(s)) for s in strides]
            keys = np.array([v[0] for v in values], dtype=np.int64)
            tights = np.array([v[1] for v in values], dtype=np.int64)
        ckey[i, without] = keys[inverse]
        ctight[i, without] = tights[inverse]
    popcount = np.zeros(n, dtype=np.int64)
    for i in range(k):
        popcount += (masks >> i) & 1
    rest_key = np.full(n, big, dtype=np.int64)
    rest_tight = np.full(n, big, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    rest_key[full] = rest_tight[full] = 0
    count[full] = 1
    by_conv = sorted(range(k), key=lambda i: conv[i])
    for size in range(k - 1, -1, -1):
        layer = masks[popcount == size]
        for i in by_conv:
            sel = layer[(layer >> i) & 1 == 0]
            nxt = sel | (1 << i)
            cand_key = ckey[i, sel] + rest_key[nxt]
            cand_tight = ctight[i, sel] + rest_tight[nxt]
            better = (cand_key < rest_key[sel]) | (
                (cand_key == rest_key[sel]) & (cand_tight < rest_tight[sel])
            )
            rest_key[sel[better]] = cand_key[better]
            rest_tight[sel[better]] = cand_tight[better]
        for i in range(k):  # orders whose exposed time is the best from each set on
            sel = layer[(layer >> i) & 1 == 0]
            nxt = sel | (1 << i)
            on_best = ckey[i, sel] + rest_key[nxt] == rest_key[sel]
            count[sel[on_best]] += count[nxt[on_best]]
    # best-first over partial orders, fastest axis first; the heuristic is exact
    heap: list[tuple[int, int, tuple[int, ...], int, int, int, tuple[int, ...]]] = [
        (int(rest_key[0]), int(rest_tight[0]), (), 0, 0, 0, ())
    ]
    found: list[tuple[tuple[int, ...], int, int]] = []
    while heap and len(found) <= top:  # one more than asked: does the last group go on?
        _, _, prefix, mask, g_key, g_tight, seq = heapq.heappop(heap)
        if mask == full:
            found.append((seq, g_key, g_tight))
            continue
        for i in by_conv:
            if mask >> i & 1:
                continue
            nxt = mask | (1 << i)
            key = g_key + int(ckey[i, mask])
            tight = g_tight + int(ctight[i, mask])
            heapq.heappush(
                heap,
                (
                    key + int(rest_key[nxt]),
                    tight + int(rest_tight[nxt]),
                    (*prefix, conv[i]),
                    nxt,
                    key,
                    tight,
                    (*seq, i),
                ),
            )
    ranked = _assign_ranks(found, int(count[0]), len(found) <= top)
    return ranked[:top]
