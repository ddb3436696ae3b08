"""The search over axis orders: every order up to :data:`FULL_SEARCH_AXES` moving axes, the candidates
given, or an exact best-first search that builds only the ``top`` cheapest orders.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence

from ..errors import InvalidArgumentError
from ..topology import ProcessTopology, parse_order
from .model import Context

__all__ = ["FULL_SEARCH_AXES"]

#: Up to this many axes of size > 1, every order is evaluated; beyond, a best-first
#: search returns the ``top`` best orders exactly without building the others.
FULL_SEARCH_AXES = 6


def _candidate_orders(
    topo: ProcessTopology, candidates: Sequence[str | Sequence[str]] | None
) -> tuple[list[tuple[str, ...]], str]:
    """All orders of the axes of size > 1 (size-1 axes keep their slots), or the candidates given."""
    names, dims = topo.axes, topo.dims
    if candidates is not None:
        orders: list[tuple[str, ...]] = []
        for cand in candidates:
            if isinstance(cand, str):
                seq = parse_order(cand)[::-1]  # Megatron writes the fastest axis first
            else:
                seq = list(cand)
            topo.axis_indices(seq)  # unknown or repeated names fail here
            moving = [a for a in seq if topo.get_dim(a) > 1]
            missing = [a for a, d in zip(names, dims) if d > 1 and a not in moving]
            if missing:
                raise InvalidArgumentError(f"candidate order {cand!r} leaves out the axes {missing}")
            orders.append(_fill(names, dims, moving))
        if not orders:
            raise InvalidArgumentError("candidates= is empty")
        return list(dict.fromkeys(orders)), "given"
    moving = [a for a, d in zip(names, dims) if d > 1]
    return [_fill(names, dims, list(p)) for p in itertools.permutations(moving)], "all"


def _fill(names: Sequence[str], dims: Sequence[int], moving: Sequence[str]) -> tuple[str, ...]:
    """The order with the axes of size > 1 in ``moving``'s order and each size-1 axis in its own slot."""
    it = iter(moving)
    return tuple(next(it) if d > 1 else n for n, d in zip(names, dims))


def _best_first(ctx: Context, top: int) -> list[tuple[str, ...]]:
    """The ``top`` cheapest orders (and every order tied with the last), exactly, without building all.

    An axis's cost depends only on its stride, the product of the sizes of the axes
    faster than it, i.e. on the *set* of faster axes. Building orders from the
    fastest axis outwards, ``rest[S]``, the cheapest way to place the axes not in
    ``S`` around a set ``S`` of fast axes, is a dynamic programme over subsets;
    with it as an exact heuristic, a best-first search pops complete orders in
    ascending cost, so it stops after the ``top``-th.
    """
    names, dims = ctx.names, ctx.dims
    moving = [a for a, d in zip(names, dims) if d > 1]
    k = len(moving)
    full = (1 << k) - 1
    prod = [1] * (1 << k)
    for mask in range(1, 1 << k):
        low = (mask & -mask).bit_length() - 1
        prod[mask] = prod[mask & (mask - 1)] * ctx.size[moving[low]]
    cost = [  # cost[mask][i]: axis i just slower than the axes of mask (unused when i is in mask)
        [0.0 if mask >> i & 1 else ctx.axis(moving[i], prod[mask])[3] for i in range(k)]
        for mask in range(1 << k)
    ]
    rest = [0.0] * (1 << k)
    for mask in range(full - 1, -1, -1):
        rest[mask] = min(cost[mask][i] + rest[mask | (1 << i)] for i in range(k) if not mask & (1 << i))
    heap: list[tuple[float, int, int, tuple[int, ...]]] = [(rest[0], 0, 0, ())]
    counter = itertools.count(1)
    found: list[tuple[str, ...]] = []
    limit = math.inf
    while heap:
        key, _, mask, seq = heapq.heappop(heap)
        if key > limit:
            break
        if mask == full:
            found.append(_fill(names, dims, [moving[i] for i in reversed(seq)]))
            if len(found) == top:
                limit = key * (1 + 1e-12) + 1e-300  # keep the orders tied with the last one
            continue
        spent = key - rest[mask]
        for i in range(k):
            if not mask & (1 << i):
                nxt = mask | (1 << i)
                heapq.heappush(heap, (spent + cost[mask][i] + rest[nxt], next(counter), nxt, (*seq, i)))
    return found


def rank_orders(
    ctx: Context, candidates: Sequence[str | Sequence[str]] | None, top: int | None
) -> tuple[list[tuple[str, ...]], str, int]:
    """The orders kept, cheapest first; how they were found; how many orders there were."""
    moving = sum(1 for d in ctx.dims if d > 1)
    if candidates is None and moving > FULL_SEARCH_AXES:
        if moving > 16:
            raise InvalidArgumentError(f"{moving} axes of size > 1 are too many to plan (at most 16)")
        orders = _best_first(ctx, top or 20)
        search, count = "best-first", math.factorial(moving)
    else:
        orders, search = _candidate_orders(ctx.topo, candidates)
        count = len(orders)
    index = {o: i for i, o in enumerate(orders)}
    orders.sort(key=lambda o: (ctx.cost(o), ctx.tie_key(o), index[o]))
    if top is not None or search == "best-first":
        orders = orders[: top or 20]
    return orders, search, count
