"""Where the ranks of a job sit: nodes, NVLink domains, network levels, and how far a group reaches.

A :class:`Placement` says, for a job of ``world_size`` ranks, which node each rank
runs on and which ranks a node holds; nodes are numbered from 0, and every
``nodes_per_domain`` consecutive nodes form an NVLink domain (a rack, an NVLink
Switch system). From that follow the number of nodes and domains, whether every
node is full, and the *span* of a group: how many nodes and domains its members
touch, the most over all the groups of an axis (or of a set of axes).

:class:`BlockPlacement` is the placement of torchrun and of Slurm's block
distribution: ranks fill node 0, then node 1, and so on. It answers everything in
closed form, in O(1) or O(log ranks_per_node) whatever the world size.
:class:`ListedPlacement` takes the node of every rank as given (host names gathered
at run time, a hostfile, Slurm's cyclic distribution, uneven nodes) and answers by
going through the ranks. Code that asks a :class:`Placement` works with either.
:meth:`Placement.from_counts` deals ranks to nodes of given sizes by Slurm's block,
cyclic or plane distribution (:func:`place`) and picks the kind that fits.

A :class:`Machine` is the hierarchy the links form: the node, the NVLink domain,
then any number of network levels (a leaf or rail group, a pod, a cluster), each a
:class:`Level` with its size, the bandwidth each rank gets over it, its latency
and its oversubscription. :meth:`Machine.reach` gives, in closed form, how many
units of every level one group of an axis touches (the most, and on average) and
its *tier*: the lowest level one unit of which holds each group whole, whose links
the group's collectives use. :data:`PRESETS` are documented machines
(:func:`machine` loads one by name, or a JSON/TOML machine file).

This module is proctopo's one place for node, domain and network arithmetic. It never imports torch.

>>> m = BlockPlacement(world_size=20, ranks_per_node=8, nodes_per_domain=2)
>>> m.nodes, m.domains, m.node_of(17), m.local_rank(17), m.domain_of(17)
(3, 2, 2, 1, 1)
>>> m.ranks_of_node(2), m.partial_node()
(range(16, 20), '20 ranks on nodes of 8 ranks leave 4 on the last node')
>>> m = BlockPlacement(world_size=64, ranks_per_node=8, nodes_per_domain=4)
>>> m.span(stride=1, size=8), m.span(stride=8, size=8)
(Span(nodes=1, domains=1), Span(nodes=8, domains=2))
>>> m.span(stride=8, size=8).tier
'network'
>>> hgx = machine("hgx-h100")
>>> [level.name for level in hgx.levels]
['node', 'domain', 'leaf', 'spine', 'core']
>>> r = hgx.reach(stride=8, size=16, world_size=16384)  # 16 nodes of one scalable unit
>>> r.spans, hgx.levels[r.tier].name
((16, 16, 1, 1), 'leaf')
"""

from __future__ import annotations

import abc
import bisect
import functools
import math
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import InvalidArgumentError, RankOutOfRangeError

if TYPE_CHECKING:
    import numpy as np

    from .topology import AxesArg, ProcessTopology

__all__ = [
    "DISTRIBUTIONS",
    "ENUMERATION_LIMIT",
    "PRESETS",
    "TIER_NAMES",
    "BlockPlacement",
    "Level",
    "ListedPlacement",
    "Machine",
    "MeasuredPlacement",
    "Placement",
    "Reach",
    "Span",
    "blocks_spanned",
    "machine",
    "mean_blocks_spanned",
    "place",
    "seconds_text",
]

#: The levels of the machine :meth:`Machine.default` builds, fastest first: inside one
#: node, across the nodes of one NVLink domain, across domains (the network).
TIER_NAMES: tuple[str, ...] = ("node", "domain", "network")

#: Spans that are found by listing groups (every span of a :class:`ListedPlacement`, and
#: on a :class:`BlockPlacement` the span of axes that are not neighbours in the order)
#: list at most this many ranks.
ENUMERATION_LIMIT = 1 << 22


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` of at least 1 (NumPy integers too); ``name`` names it in the error.

    >>> positive_int("ranks_per_node", 0)
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: ranks_per_node must be at least 1, got 0
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if number < 1:
        raise InvalidArgumentError(f"{name} must be at least 1, got {number}")
    return number


class Span(NamedTuple):
    """The most nodes and NVLink domains one group touches."""

    nodes: int
    domains: int

    @property
    def tier(self) -> str:
        """The slowest link such a group uses (:data:`TIER_NAMES`): ``"node"``, ``"domain"`` or ``"network"``.

        >>> Span(1, 1).tier, Span(2, 1).tier, Span(2, 2).tier
        ('node', 'domain', 'network')
        """
        return TIER_NAMES[0] if self.nodes == 1 else TIER_NAMES[1] if self.domains == 1 else TIER_NAMES[2]


# --------------------------------------------------------------------------- closed forms
def _floor_sum(n: int, m: int, a: int, b: int) -> int:
    """``sum(floor((a*i + b) / m) for i in range(n))`` for ``n >= 0``, ``m >= 1``, ``a, b >= 0``.

    Euclid-like, O(log m) levels. After taking the whole parts out, ``a, b < m`` and
    the sum counts the lattice points ``(i, j)`` with ``1 <= j``, ``j*m <= a*i + b``
    and ``i < n``. Counting them by ``j`` instead gives ``J*n`` minus
    ``sum(ceil((j*m - b) / a) for j in 1..J)``, ``J = floor((a*(n-1) + b) / m)``:
    a sum of the same form with ``a`` and ``m`` swapped, as in Euclid's algorithm.
    """
    if n <= 0:
        return 0
    total = (a // m) * (n * (n - 1) // 2) + (b // m) * n
    a, b = a % m, b % m
    j = (a * (n - 1) + b) // m
    if j == 0:
        return total
    return total + j * n - _floor_sum(j, a, m, m - b + a - 1)


def blocks_spanned(stride: int, size: int, world_size: int, block: int) -> int:
    """The most blocks of ``block`` consecutive ranks that one group of an axis touches.

    The axis has ``size`` and ``stride`` in a row-major topology of ``world_size``
    ranks; its groups are ``{b + k*stride : k < size}`` for every base rank ``b``
    whose coordinate along the axis is 0. Block ``j`` holds ranks
    ``[j*block, (j+1)*block)`` (a node when ``block`` is the ranks per node, an
    NVLink domain when it is the ranks per domain); the last block may be partial.
    The answer is the maximum over the groups, in O(log block) whatever the size of
    the world: a stride of at least ``block`` puts every member in its own block;
    a smaller stride cannot skip a block, so a group spans
    ``floor((b + L) / block) - floor(b / block) + 1`` blocks with
    ``L = (size - 1) * stride``, one more than ``floor(L / block) + 1`` exactly when
    some base ``b`` has ``b mod block`` large enough, which a floor sum counts.

    >>> blocks_spanned(1, 8, 64, 8), blocks_spanned(8, 8, 64, 8), blocks_spanned(1, 8, 72, 12)
    (1, 8, 2)
    """
    if size <= 1 or block >= world_size or block % (stride * size) == 0:
        return 1  # one block holds the world, or each group's aligned window of stride*size ranks
    if stride >= block:
        return size
    extent = (size - 1) * stride
    whole, rest = divmod(extent, block)
    if rest == 0:
        return whole + 1
    # A base b = hi*period + lo (lo < stride, hi < count) touches one block more when
    # b mod block >= block - rest; over lo that holds for some lo iff
    # (hi*period) mod block >= threshold.
    threshold = block - rest - stride + 1
    if threshold <= 0:
        return whole + 2
    period = stride * size
    count = world_size // period
    hits = _floor_sum(count, block, period, block - threshold) - _floor_sum(count, block, period, 0)
    return whole + 2 if hits > 0 else whole + 1


def _floor_sums(n: int, a: int, b: int, c: int) -> tuple[int, int, int]:
    """``(sum(q), sum(i*q), sum(q*q))`` over ``i = 0 .. n`` of ``q = floor((a*i + b) / c)``.

    For ``n >= -1``, ``c >= 1``, ``a, b >= 0``; O(log c) levels, the same Euclid-like
    exchange of ``a`` and ``c`` as :func:`_floor_sum`, carrying the two weighted sums
    along (the identities are checked against the plain sums in tests/test_machine.py).
    """
    if n < 0:
        return 0, 0, 0
    s1 = n * (n + 1) // 2
    if a == 0:
        q = b // c
        return (n + 1) * q, q * s1, (n + 1) * q * q
    if a >= c or b >= c:
        ka, kb = a // c, b // c
        f, g, h = _floor_sums(n, a % c, b % c, c)
        s2 = n * (n + 1) * (2 * n + 1) // 6
        return (
            f + ka * s1 + kb * (n + 1),
            g + ka * s2 + kb * s1,
            h + ka * ka * s2 + kb * kb * (n + 1) + 2 * ka * kb * s1 + 2 * ka * g + 2 * kb * f,
        )
    m = (a * n + b) // c
    if m == 0:
        return 0, 0, 0
    f, g, h = _floor_sums(m - 1, c, c - b - 1, a)
    total = n * m - f
    return total, (m * n * (n + 1) - h - f) // 2, n * m * (m + 1) - 2 * g - 2 * f - total


def mean_blocks_spanned(stride: int, size: int, world_size: int, block: int) -> Fraction:
    """The blocks of ``block`` consecutive ranks one group of an axis touches, on average over the groups.

    The groups and blocks of :func:`blocks_spanned`, whose maximum this averages,
    exactly and in O(log block). With ``stride < block`` the group at base ``b``
    spans ``floor((b + L) / block) - floor(b / block) + 1`` blocks (``L = (size - 1) *
    stride``); the bases are ``h*P + l`` (``P = stride * size``, ``l < stride``), and
    the sum over ``l`` of ``floor((x + l) / block)`` is ``F(x + stride) - F(x)`` with
    ``F(y) = q*y - block*q*(q + 1)/2``, ``q = floor(y / block)``, whose sum over ``h``
    needs ``sum(q)``, ``sum(h*q)`` and ``sum(q*q)`` (:func:`_floor_sums`).

    >>> mean_blocks_spanned(8, 2, 144, 72)  # {b, b + 8}: 8 of the 72 bases straddle a boundary
    Fraction(10, 9)
    >>> mean_blocks_spanned(8, 8, 64, 8), mean_blocks_spanned(1, 16, 64, 8)
    (Fraction(8, 1), Fraction(2, 1))
    """
    if size <= 1 or block >= world_size or block % (stride * size) == 0:
        return Fraction(1)
    if stride >= block:
        return Fraction(size)
    period = stride * size
    if period % block == 0 and block % stride == 0:
        return Fraction(period // block)  # every group: one member per stride, block/stride per block
    extent = (size - 1) * stride
    count = world_size // period

    def summed(c: int) -> int:  # sum over h < count of F(h*period + c)
        f, g, h = _floor_sums(count - 1, period, c, block)
        return period * g + c * f - block * (h + f) // 2

    bases = count * stride
    total = bases + summed(extent + stride) - summed(extent) - summed(stride) + summed(0)
    return Fraction(total, bases)


def level_reach(stride: int, size: int, world_size: int, block: int) -> tuple[int, int, int]:
    """One level at once: the most blocks one group touches, and the fraction of the groups that
    touch more than one, as ``(most, crossing, groups)`` (``crossing / groups``); closed form.

    A group whose extent ``L = (size - 1) * stride`` reaches ``block`` touches two blocks
    or more whatever its base; a shorter one (with ``stride < block``) touches one or two,
    and the number that touch two is the sum over the bases of
    ``floor((b + L) / block) - floor(b / block)`` (:func:`mean_blocks_spanned`'s sums), so the
    most is 2 exactly when that number is not 0. One pass of floor sums answers both.

    >>> level_reach(8, 2, 144, 72), level_reach(1, 16, 144, 8), level_reach(1, 8, 64, 8)
    ((2, 8, 72), (2, 9, 9), (1, 0, 8))
    """
    if size <= 1 or block >= world_size or block % (stride * size) == 0:
        groups = world_size // size if size > 1 else world_size
        return 1, 0, groups
    period = stride * size
    groups = world_size // period * stride
    if stride >= block:
        return size, groups, groups
    extent = (size - 1) * stride
    if extent >= block:
        return blocks_spanned(stride, size, world_size, block), groups, groups
    count = world_size // period

    def summed(c: int) -> int:  # sum over h < count of F(h*period + c), as in mean_blocks_spanned
        f, g, h = _floor_sums(count - 1, period, c, block)
        return period * g + c * f - block * (h + f) // 2

    crossing = summed(extent + stride) - summed(extent) - summed(stride) + summed(0)
    return (2 if crossing else 1), crossing, groups


# --------------------------------------------------------------------------- many strides at once
#: The largest world size the array twins answer: their floor divisions take ``a*n + b`` with
#: ``a*n`` at most the world size and ``b`` at most one period, so both stay below 2**63.
#: Beyond it, :meth:`Machine.reach_and_crossing_many` answers stride by stride with the scalar code.
ARRAY_WORLD_LIMIT = 1 << 62


#: The inverse of 3 modulo 2**64: a multiple of 3 times it, modulo 2**64, is a third of it modulo 2**64.
_INVERSE_OF_3 = 0xAAAAAAAAAAAAAAAB


def _triangles(x: np.ndarray) -> np.ndarray:
    """``x*(x+1)/2`` modulo 2**64 for uint64 ``x``: the even factor is halved (a shift), then multiplied."""
    import numpy as np

    odd = x & np.uint64(1)
    product: np.ndarray = (x >> (odd ^ np.uint64(1))) * ((x + np.uint64(1)) >> odd)
    return product


def _floor_sums_many(
    n: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_floor_sums` at each position of four arrays, as ``(sum(q), sum(i*q), sum(q*(q+1)/2))``
    modulo 2**64 (uint64).

    For ``n >= 0``, ``c >= 1``, ``a, b >= 0`` with ``a*n + b < 2**63``. The same Euclid-like
    steps as the scalar function, taken by every position at once: a descent that takes the
    whole parts out of ``a`` and ``b`` and then exchanges ``a`` and ``c``, recording each step,
    and an ascent that combines the sums. The third sum is ``sum(q*(q+1)/2)`` rather than
    ``sum(q*q)`` so that every step is additions, subtractions and products of integers
    computed exactly (``x*(x+1)/2`` and ``n*(n+1)*(2n+1)/6`` divide their factors, not their
    products): arithmetic modulo 2**64 then gives every sum modulo 2**64, and a caller whose
    answer lies in ``[0, 2**63)`` reads it exactly however large the sums on the way are. The
    floor divisions see only the true ``a``, ``b``, ``c`` and ``n``, and ``a*n + b`` never grows
    from one step to the next.
    """
    import numpy as np

    u64 = np.uint64
    n, a, b, c = (np.asarray(x, dtype=np.int64).astype(u64) for x in (n, a, b, c))
    size = n.shape[0]
    at = np.arange(size)
    steps = []
    while at.size:
        ka, a = np.divmod(a, c)
        kb, b = np.divmod(b, c)
        m = (a * n + b) // c  # 0 where a == 0 (then b < c): nothing left below
        steps.append((at, n, ka, kb, m))
        go = m != 0
        at, n, a, b, c = at[go], m[go] - u64(1), c[go], c[go] - b[go] - u64(1), a[go]
    f = np.zeros(size, dtype=u64)
    g = np.zeros(size, dtype=u64)
    t = np.zeros(size, dtype=u64)
    one, third = u64(1), u64(_INVERSE_OF_3)
    for at, n, ka, kb, m in reversed(steps):
        f0, g0, t0 = f[at], g[at], t[at]  # the exchanged sums (0 where the descent stopped)
        n1 = n + one
        s1 = _triangles(n)
        # the exchange: sums over j < m counted by columns instead of rows
        f1 = n * m - f0
        g1 = m * s1 - t0
        t1 = n * _triangles(m) - g0 - f0
        # the whole parts, q = ka*i + kb + q': sums of i*i and of i*(i+1)/2 (a third of a multiple of 3)
        s2 = s1 * (n + n1) * third
        tetra = s1 * (n1 + one) * third
        f[at] = f1 + ka * s1 + kb * n1
        g[at] = g1 + ka * s2 + kb * s1
        t[at] = t1 + _triangles(ka - one) * s2 + ka * tetra + n1 * _triangles(kb)
        t[at] += ka * kb * s1 + ka * g1 + kb * f1
    return f, g, t


def level_reach_many(
    strides: np.ndarray, size: int, world_size: int, block: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`level_reach` for many strides of one axis size at once: ``(most, crossing, groups)``,
    the first two int64 arrays, ``groups`` (``world_size // size``, the same at every stride) an int.

    Exact, as the scalar function, for world sizes up to :data:`ARRAY_WORLD_LIMIT` (every
    ``stride * size`` must divide the world size, which the caller checks): the floor sums are
    taken modulo 2**64 and the answers, at most the world size, are read from them exactly.
    """
    import numpy as np

    s = np.asarray(strides, dtype=np.int64)
    most = np.ones(s.shape, dtype=np.int64)
    crossing = np.zeros(s.shape, dtype=np.int64)
    groups = world_size // size if size > 1 else world_size
    if size <= 1 or block >= world_size:
        return most, crossing, groups
    period = s * size
    extent = s * (size - 1)
    live = block % period != 0
    wide = live & (s >= block)  # every member in its own block
    most[wide] = size
    crossing[wide] = groups
    long = live & ~wide & (extent >= block)  # every group touches two blocks or more
    short = live & ~wide & ~long  # one or two
    crossing[long] = groups
    # the long ones: blocks_spanned's count of the bases that reach one block further
    ls, lp, le = s[long], period[long], extent[long]
    whole, rest = le // block, le % block
    threshold = block - rest - ls + 1
    most_long = whole + np.where(rest == 0, 1, np.where(threshold <= 0, 2, 1))
    ask = (rest != 0) & (threshold > 0)
    ss, sp, se = s[short], period[short], extent[short]
    if world_size % block == 0:
        # Whole blocks: block and period both divide the world size, so the residues h*period mod
        # block of the rows h < world_size // period run over every multiple of g = gcd(period,
        # block) below block, each world_size // lcm(period, block) times. Then the most a row's
        # residue reaches is block - g, and the bases (h*period + l, l < stride) whose group crosses
        # a boundary, a residue r and an l with (r + l) mod block in [block - extent, block), count
        # by the class of l mod g: for each class, the l < stride in it times the values in the
        # window in it, summed in closed form over the g classes.
        gl = np.gcd(lp[ask], block)
        most_long[ask] += block - gl >= threshold[ask]
        g = np.gcd(sp, block)
        qs, rs = np.divmod(ss, g)
        qe, re = np.divmod(se, g)
        cycle = g * qs * qe + qs * re + qe * rs + np.maximum(rs + re - g, 0)
        cross = (world_size // sp) // (block // g) * cycle
    else:
        # A partial last block: the floor sums (blocks_spanned's, and level_reach's four sums of
        # F(h*period + c), of which the one at c = period is the one at c = 0 plus F(world_size))
        q_long = world_size // lp[ask]
        q_short = world_size // sp
        ns = np.concatenate([q_long - 1, q_long - 1, *([q_short - 1] * 3)])
        As = np.concatenate([lp[ask], lp[ask], *([sp] * 3)])
        Bs = np.concatenate([block - threshold[ask], np.zeros_like(q_long), se, ss, np.zeros_like(sp)])
        f, g2, t = _floor_sums_many(ns, As, Bs, np.full(ns.shape, block, dtype=np.int64))
        hl = q_long.size
        most_long[ask] += (f[:hl] - f[hl : 2 * hl]).astype(np.int64) > 0
        ku = sp.size
        summed = []
        for j, cs in enumerate((se, ss, np.zeros_like(sp))):
            part = slice(2 * hl + j * ku, 2 * hl + (j + 1) * ku)
            summed.append(
                sp.astype(np.uint64) * g2[part] + cs.astype(np.uint64) * f[part] - np.uint64(block) * t[part]
            )
        q = world_size // block
        whole_world = np.uint64((q * world_size - block * q * (q + 1) // 2) % (1 << 64))  # F(world_size)
        cross = (np.uint64(2) * summed[2] + whole_world - summed[0] - summed[1]).astype(np.int64)
    most[long] = most_long
    crossing[short] = cross
    most[short] = np.where(cross != 0, 2, 1)
    return most, crossing, groups


def _distinct(ids: np.ndarray) -> np.ndarray:
    """The number of distinct values along axis 1 of an integer array, at each of its other positions."""
    import numpy as np

    counted: np.ndarray = np.count_nonzero(np.diff(np.sort(ids, axis=1), axis=1), axis=1) + 1
    return counted


def _most_distinct(ids: np.ndarray) -> int:
    """The most distinct values along axis 1 of an integer array, over its other positions."""
    return 1 if ids.size == 0 else int(_distinct(ids).max())


# --------------------------------------------------------------------------- distributions
#: The distributions :func:`place` knows: Slurm's names for how ranks go round the nodes.
DISTRIBUTIONS = ("block", "cyclic", "plane")


def place(counts: Sequence[int], distribution: str = "block", plane: int | None = None) -> list[int]:
    """The node of every rank when ``counts[i]`` ranks go to node ``i`` by ``distribution``.

    - ``"block"``: node 0 takes ranks ``0 .. counts[0] - 1``, node 1 the next, and so on.
    - ``"cyclic"``: one rank to each node in turn, skipping the nodes that are full.
    - ``"plane"``: ``plane`` consecutive ranks to each node in turn (fewer to a node
      with fewer left), skipping the nodes that are full.

    Args:
        counts: Ranks on each node, node 0 first; each at least 1.
        distribution: One of :data:`DISTRIBUTIONS`.
        plane: The block size of ``"plane"`` (at least 1); only with ``"plane"``.

    Raises:
        InvalidArgumentError: no nodes, a count below 1, an unknown distribution, a plane
            size missing or below 1, or more ranks than a listed placement may hold.

    >>> place([2, 2, 2], "block"), place([2, 2, 2], "cyclic"), place([4, 2], "plane", 2)
    ([0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 2], [0, 0, 1, 1, 0, 0])
    >>> place([3, 1], "cyclic")
    [0, 1, 0, 0]
    """
    import numpy as np

    sizes = _counts(counts)
    chunk = _chunk(distribution, plane)
    total = sum(sizes)
    if total > ENUMERATION_LIMIT:
        raise InvalidArgumentError(
            f"{total:,} ranks placed rank by rank are more than the {ENUMERATION_LIMIT:,} a listed "
            "placement holds"
        )
    c = np.asarray(sizes, dtype=np.int64)
    nodes = np.arange(len(sizes), dtype=np.int64)
    if chunk is None:
        ids: list[int] = np.repeat(nodes, c).tolist()
        return ids
    visits = -(-c // chunk)  # how often each node is visited: one chunk a visit
    node = np.repeat(nodes, visits)
    visit = np.arange(node.size, dtype=np.int64) - np.repeat(np.cumsum(visits) - visits, visits)
    size = np.minimum(chunk, c[node] - visit * chunk)
    order = np.lexsort((node, visit))  # round by round, node by node within a round
    out: list[int] = np.repeat(node[order], size[order]).tolist()
    return out


def _counts(counts: Sequence[int]) -> list[int]:
    sizes = [int(n) for n in counts]
    if not sizes:
        raise InvalidArgumentError("a placement needs at least one node")
    for i, n in enumerate(sizes):
        if n < 1:
            raise InvalidArgumentError(f"node {i} is given {n} ranks; every node holds at least 1")
    return sizes


def _chunk(distribution: str, plane: int | None) -> int | None:
    """The ranks a node takes on each visit (None: all of them at once, the block distribution)."""
    if distribution not in DISTRIBUTIONS:
        raise InvalidArgumentError(
            f"unknown distribution {distribution!r}; proctopo places ranks by {', '.join(DISTRIBUTIONS)}"
        )
    if distribution != "plane":
        if plane is not None:
            raise InvalidArgumentError(f"a plane size is for the plane distribution, not {distribution!r}")
        return None if distribution == "block" else 1
    if plane is None or plane < 1:
        raise InvalidArgumentError(f"the plane distribution needs a plane size of at least 1, got {plane}")
    return plane


class _OverBudget(Exception):
    """A count ran past the sub-sums it was given (:meth:`BlockPlacement.count_nodes_of_runs`)."""


# --------------------------------------------------------------------------- placements
class Placement(abc.ABC):
    """Where each rank of a job runs: its node, and the NVLink domain of that node.

    Nodes are numbered ``0 .. nodes - 1``; domain ``d`` holds nodes
    ``d * nodes_per_domain`` up to the next domain's first. A subclass says which
    node each rank is on (:meth:`node_of`, :meth:`ranks_of_node`, :attr:`nodes`,
    :meth:`node_ids`, :meth:`describe`); everything else follows, and a subclass may
    answer it faster.

    Args:
        world_size: Ranks in the job.
        nodes_per_domain: Nodes in each NVLink domain (1: the domain is the node).

    Raises:
        InvalidArgumentError: a count below 1.
        TypeError: a count that is not an integer.
    """

    __slots__ = ("nodes_per_domain", "world_size")

    def __init__(self, world_size: int, nodes_per_domain: int = 1) -> None:
        self.world_size = positive_int("world_size", world_size)
        self.nodes_per_domain = positive_int("nodes_per_domain", nodes_per_domain)

    # ------------------------------------------------------------------ what a placement says
    @property
    @abc.abstractmethod
    def nodes(self) -> int:
        """Number of nodes that hold ranks."""

    @abc.abstractmethod
    def node_of(self, rank: int) -> int:
        """The node rank ``rank`` runs on.

        Raises:
            RankOutOfRangeError: a rank outside ``[0, world_size)``.
        """

    @abc.abstractmethod
    def ranks_of_node(self, node: int) -> Sequence[int]:
        """The ranks on node ``node``, ascending.

        Raises:
            InvalidArgumentError: a node outside ``[0, nodes)``.
        """

    @abc.abstractmethod
    def node_ids(self, ranks: np.ndarray) -> np.ndarray:
        """:meth:`node_of` of every rank of an integer array (valid ranks), as an array of its shape."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The ranks and nodes in words, e.g. ``"20 ranks on nodes of 8 ranks"``."""

    @property
    def is_block(self) -> bool:
        """True when ranks fill the nodes in order, the same number on each but the last."""
        return False

    @classmethod
    def from_counts(
        cls,
        counts: Sequence[int],
        distribution: str = "block",
        plane: int | None = None,
        nodes_per_domain: int = 1,
    ) -> Placement:
        """The placement of ``counts[i]`` ranks on node ``i``, dealt by ``distribution`` (:func:`place`).

        Ranks that fill the nodes in order, the same number on each but the last, give a
        :class:`BlockPlacement` (closed form, any size), whatever the distribution is
        called (cyclic over one node, planes as large as every node); any other pattern
        a :class:`ListedPlacement`.

        Raises:
            InvalidArgumentError: see :func:`place`.

        >>> Placement.from_counts([4, 4, 1]), Placement.from_counts([2, 2], "plane", 2)
        (BlockPlacement(world_size=9, ranks_per_node=4, nodes_per_domain=1), \
BlockPlacement(world_size=4, ranks_per_node=2, nodes_per_domain=1))
        >>> Placement.from_counts([2, 2], "cyclic")
        ListedPlacement([0, 1, 0, 1], nodes_per_domain=1)
        """
        sizes = _counts(counts)
        chunk = _chunk(distribution, plane)
        if chunk is not None and (len(sizes) == 1 or chunk >= max(sizes)):
            chunk = None  # one visit fills every node: the block pattern whatever the name
        full = sizes[0]
        if chunk is None and all(n == full for n in sizes[:-1]) and sizes[-1] <= full:
            return BlockPlacement(sum(sizes), full, nodes_per_domain)
        return ListedPlacement(place(sizes, distribution, plane), nodes_per_domain)

    def in_domains(self, nodes_per_domain: int) -> Placement:
        """The same nodes, every ``nodes_per_domain`` consecutive ones forming an NVLink domain.

        >>> BlockPlacement(16, 4).in_domains(2).domains
        2
        """
        import numpy as np

        return ListedPlacement(self.node_ids(np.arange(self.world_size, dtype=np.int64)), nodes_per_domain)

    def _capacity(self) -> tuple[int, int, int]:
        """(ranks a full node holds, fewest ranks on a node, the last node holding that few)."""
        sizes = [len(self.ranks_of_node(i)) for i in range(self.nodes)]
        fewest = min(sizes)
        return max(sizes), fewest, len(sizes) - 1 - sizes[::-1].index(fewest)

    # ------------------------------------------------------------------ what follows
    def _check_rank(self, rank: int) -> int:
        r = operator.index(rank)
        if not 0 <= r < self.world_size:
            raise RankOutOfRangeError(
                f"rank {r} is not in the placement: ranks run from 0 to {self.world_size - 1}"
            )
        return r

    def _check_node(self, node: int) -> int:
        n = operator.index(node)
        if not 0 <= n < self.nodes:
            raise InvalidArgumentError(
                f"node {n} is not in the layout: {self.describe()} are nodes 0..{self.nodes - 1}"
            )
        return n

    def local_rank(self, rank: int) -> int:
        """The position of ``rank`` among the ranks of its node (its ``LOCAL_RANK``)."""
        return bisect.bisect_left(self.ranks_of_node(self.node_of(rank)), rank)

    @property
    def domains(self) -> int:
        """Number of NVLink domains (the last may be partial)."""
        return -(-self.nodes // self.nodes_per_domain)

    def domain_of_node(self, node: int) -> int:
        """The domain of node ``node``.

        Raises:
            InvalidArgumentError: a node outside ``[0, nodes)``.
        """
        return self._check_node(node) // self.nodes_per_domain

    def domain_of(self, rank: int) -> int:
        """The domain rank ``rank`` runs in."""
        return self.node_of(rank) // self.nodes_per_domain

    def domain_ids(self, ranks: np.ndarray) -> np.ndarray:
        """:meth:`domain_of` of every rank of an integer array (valid ranks), as an array of its shape."""
        ids: np.ndarray = self.node_ids(ranks) // self.nodes_per_domain
        return ids

    def nodes_of_domain(self, domain: int) -> range:
        """The nodes of domain ``domain``.

        Raises:
            InvalidArgumentError: a domain outside ``[0, domains)``.
        """
        d = operator.index(domain)
        if not 0 <= d < self.domains:
            raise InvalidArgumentError(
                f"domain {d} is not in the layout: {self.nodes} nodes in domains of "
                f"{self.nodes_per_domain} nodes are domains 0..{self.domains - 1}"
            )
        return range(d * self.nodes_per_domain, min(self.nodes, (d + 1) * self.nodes_per_domain))

    def short_node(self) -> int | None:
        """The last node holding the fewest ranks when that is fewer than a full node holds, else ``None``.

        >>> BlockPlacement(20, 8).short_node(), Placement.from_counts([4, 2, 4, 2, 4]).short_node()
        (2, 3)
        """
        full, fewest, node = self._capacity()
        return None if fewest == full else node

    def partial_node(self) -> str | None:
        """What leaves a node short of ranks, in words, or ``None`` when every node is full."""
        full, fewest, node = self._capacity()
        if fewest == full:
            return None
        where = "the last node" if node == self.nodes - 1 else f"node {node}"
        return f"{self.world_size} ranks on nodes of {full} ranks leave {fewest} on {where}"

    def partial_domain(self) -> str | None:
        """What leaves the last domain short of nodes, in words, or ``None`` when every domain is full."""
        last = self.nodes - (self.domains - 1) * self.nodes_per_domain
        if last == self.nodes_per_domain:
            return None
        return (
            f"{self.nodes} nodes on NVLink domains of {self.nodes_per_domain} nodes "
            f"leave {last} on the last domain"
        )

    def require_full_nodes(self) -> None:
        """Raise unless every node holds as many ranks as a full node.

        Raises:
            InvalidArgumentError: a node short of ranks (the text of :meth:`partial_node`).
        """
        problem = self.partial_node()
        if problem is not None:
            raise InvalidArgumentError(problem)

    def count_nodes(self, ranks: Sequence[int]) -> int:
        """How many nodes hold at least one of ``ranks`` (valid ranks, in any order)."""
        import numpy as np

        if len(ranks) == 0:
            return 0
        return int(np.unique(self.node_ids(np.asarray(ranks, dtype=np.int64))).size)

    def _check_run(self, stride: int, size: int) -> None:
        if stride < 1 or size < 1 or self.world_size % (stride * size):
            raise InvalidArgumentError(
                f"groups of {size} ranks {stride} apart do not tile {self.world_size} ranks: "
                "stride and size must be at least 1 and their product must divide the world size"
            )

    def _check_listing(self, what: str) -> None:
        if self.world_size > ENUMERATION_LIMIT:
            raise InvalidArgumentError(
                f"the span of {what} is found by listing every group, which is limited to "
                f"{ENUMERATION_LIMIT:,} ranks; this placement has {self.world_size:,}"
            )

    def _spans_listed(self, groups: np.ndarray) -> Span:
        """The span of groups listed along axis 1 of an array of ranks."""
        return Span(_most_distinct(self.node_ids(groups)), _most_distinct(self.domain_ids(groups)))

    def widest(self, groups: np.ndarray, level: str = "node") -> int | None:
        """The row of ``groups`` (one group of ranks a row) whose ranks sit on the most nodes
        (``level="node"``) or domains (``"domain"``), the first of them, when that is more than
        one; else ``None``.

        Raises:
            InvalidArgumentError: a level other than ``"node"`` and ``"domain"``.

        >>> import numpy as np
        >>> m = ListedPlacement([0, 1, 0, 1, 2, 2])
        >>> m.widest(np.array([[0, 2], [1, 3], [3, 4]])), m.widest(np.array([[0, 2], [4, 5]]))
        (2, None)
        """
        import numpy as np

        if level not in ("node", "domain"):
            raise InvalidArgumentError(f"a group spans nodes or domains, not {level!r}")
        ids = self.node_ids(groups) if level == "node" else self.domain_ids(groups)
        distinct = _distinct(ids)
        if distinct.size == 0 or int(distinct.max()) <= 1:
            return None
        return int(np.argmax(distinct))

    def span(self, stride: int, size: int) -> Span:
        """The span of the groups ``{b + k*stride : k < size}`` of an axis (or a run of neighbouring axes).

        Raises:
            InvalidArgumentError: ``stride * size`` does not divide the world size.
        """
        import numpy as np

        self._check_run(stride, size)
        self._check_listing(f"groups of {size} ranks {stride} apart")
        ranks = np.arange(self.world_size, dtype=np.int64).reshape(-1, size, stride)
        return self._spans_listed(ranks)

    def span_of(self, topo: ProcessTopology, axes: AxesArg) -> Span:
        """The span of the groups of ``topo`` over one axis or a set of axes.

        Axes that are neighbours in the topology's order (axes of size 1 between them
        do not count) make one run, a single stride and size, answered by :meth:`span`;
        other sets are answered by listing their groups.

        Raises:
            GridSizeError: the topology has another number of ranks than the placement.
            UnknownAxisError: an axis the topology does not have.

        >>> from proctopo import ProcessTopology
        >>> topo = ProcessTopology(['pipe', 'data', 'model'], [2, 4, 2])
        >>> m = BlockPlacement(16, ranks_per_node=4)
        >>> m.span_of(topo, 'model'), m.span_of(topo, ['data', 'model']), m.span_of(topo, ['pipe', 'model'])
        (Span(nodes=1, domains=1), Span(nodes=2, domains=2), Span(nodes=2, domains=2))
        """
        topo.check_world_size(self.world_size, "the placement's world size")
        dims, strides = topo.dims, topo.strides
        chosen = sorted(i for i in topo.axis_indices(axes) if dims[i] > 1)
        if not chosen:
            return Span(1, 1)
        if chosen == [i for i in range(chosen[0], chosen[-1] + 1) if dims[i] > 1]:
            return self.span(strides[chosen[-1]], topo.group_size(axes))
        self._check_listing(f"the axes {[topo.axes[i] for i in chosen]}")
        return self._spans_listed(topo.groups(axes))


class BlockPlacement(Placement):
    """Ranks in order, ``ranks_per_node`` to a node: rank ``r`` on node ``r // ranks_per_node``.

    The placement of torchrun and of Slurm's block distribution; the last node may
    hold fewer ranks. Every answer is in closed form.

    Args:
        world_size: Ranks in the job.
        ranks_per_node: Ranks a full node holds.
        nodes_per_domain: Nodes in each NVLink domain (1: the domain is the node).

    Raises:
        InvalidArgumentError: a count below 1.
        TypeError: a count that is not an integer.

    >>> BlockPlacement(16, 8).node_of(9), BlockPlacement(16, 8).ranks_per_domain
    (1, 8)
    """

    __slots__ = ("ranks_per_node",)

    def __init__(self, world_size: int, ranks_per_node: int, nodes_per_domain: int = 1) -> None:
        super().__init__(world_size, nodes_per_domain)
        self.ranks_per_node = positive_int("ranks_per_node", ranks_per_node)

    def __repr__(self) -> str:
        return (
            f"BlockPlacement(world_size={self.world_size}, ranks_per_node={self.ranks_per_node}, "
            f"nodes_per_domain={self.nodes_per_domain})"
        )

    @property
    def ranks_per_domain(self) -> int:
        """Ranks a full NVLink domain holds."""
        return self.ranks_per_node * self.nodes_per_domain

    @property
    def nodes(self) -> int:
        return -(-self.world_size // self.ranks_per_node)

    @property
    def is_block(self) -> bool:
        return True

    def node_of(self, rank: int) -> int:
        return self._check_rank(rank) // self.ranks_per_node

    def local_rank(self, rank: int) -> int:
        return self._check_rank(rank) % self.ranks_per_node

    def ranks_of_node(self, node: int) -> range:
        n = self._check_node(node)
        return range(n * self.ranks_per_node, min(self.world_size, (n + 1) * self.ranks_per_node))

    def node_ids(self, ranks: np.ndarray) -> np.ndarray:
        return ranks // self.ranks_per_node

    def in_domains(self, nodes_per_domain: int) -> BlockPlacement:
        return BlockPlacement(self.world_size, self.ranks_per_node, nodes_per_domain)

    def describe(self) -> str:
        return f"{self.world_size} ranks on nodes of {self.ranks_per_node} ranks"

    def _capacity(self) -> tuple[int, int, int]:
        last = self.world_size - (self.nodes - 1) * self.ranks_per_node
        return self.ranks_per_node, last, self.nodes - 1

    def count_nodes(self, ranks: Sequence[int]) -> int:
        if isinstance(ranks, range) and ranks.step == 1:
            return (
                0 if not ranks else (ranks[-1] // self.ranks_per_node) - (ranks[0] // self.ranks_per_node) + 1
            )
        return super().count_nodes(ranks)

    def count_nodes_of_runs(
        self,
        base: int,
        runs: Sequence[tuple[int, int]],
        start: int = 0,
        stop: int | None = None,
        budget: int | None = None,
    ) -> int | None:
        """How many nodes hold a rank of a lattice of ranks, without listing them.

        The lattice is the ranks ``base + sum(c[k] * stride[k])``, ``0 <= c[k] < size[k]``,
        over ``runs`` of ``(size, stride)``, slowest first, each stride past the extent
        of the runs after it (the free axes of a row-major topology once some axes are
        fixed), taken in ascending order; only its positions ``start`` up to ``stop``
        (default: all) count.

        Exact, in O(runs) sub-sums for the usual shapes: the sum over a run's points
        repeats with the remainder of its stride modulo the ranks per node, so each run
        costs at most one period. ``budget`` bounds the sub-sums (for node sizes whose
        remainders repeat slowly against huge strides); past it the answer is ``None``.

        >>> m = BlockPlacement(24, 8)
        >>> m.count_nodes_of_runs(4, [(2, 12), (4, 1)])  # ranks 4..7 and 16..19
        2
        >>> m.count_nodes_of_runs(4, [(2, 12), (4, 1)], start=2, stop=5)  # 6, 7, 16
        2
        """
        size = self.ranks_per_node
        counts = [1] * (len(runs) + 1)  # counts[k]: points of the runs k..
        spans = [0] * (len(runs) + 1)  # spans[k]: last point minus first point of the runs k..
        # gaps[k]: the smallest and the largest gap between neighbouring points of runs k..
        # (none for a single point: a smallest past any rank, a largest of 0)
        gaps = [(1 << 64, 0)] * (len(runs) + 1)
        for k in range(len(runs) - 1, -1, -1):
            counts[k] = counts[k + 1] * runs[k][0]
            spans[k] = spans[k + 1] + (runs[k][0] - 1) * runs[k][1]
            jump = runs[k][1] - spans[k + 1]
            gaps[k] = (min(gaps[k + 1][0], jump), max(gaps[k + 1][1], jump))
        stop = counts[0] if stop is None else min(stop, counts[0])
        start = max(start, 0)
        if start >= stop:
            return 0
        memo: dict[tuple[int, int], int] = {}
        left = [budget]

        def spend(steps: int) -> None:
            if left[0] is not None:
                left[0] -= steps
                if left[0] < 0:
                    raise _OverBudget

        def closed(first: int, span: int, points: int, smallest: int, largest: int) -> int | None:
            """Points from ``first`` to ``first + span`` whose gaps run from ``smallest`` to
            ``largest``: gaps of at most ``size`` skip no node, gaps of at least ``size``
            share none; otherwise None."""
            if largest <= size:
                return (first + span) // size - first // size + 1
            if smallest >= size:
                return points
            return None

        def whole(k: int, first: int) -> int:
            """Nodes of the points of runs k.. starting at ``first`` (only ``first % size`` matters)."""
            if k == len(runs):
                return 1
            easy = closed(first % size, spans[k], counts[k], gaps[k][0], gaps[k][1])
            if easy is not None:
                return easy
            key = (k, first % size)
            if key not in memo:
                memo[key] = along(k, key[1], runs[k][0])
            return memo[key]

        def along(k: int, first: int, n: int) -> int:
            """Nodes of the first ``n`` whole copies of runs k+1.. along run k, from ``first``."""
            step = runs[k][1]
            inner = spans[k + 1]
            jump = step - inner  # from the last point of one copy to the first of the next
            if n == 1:
                return whole(k + 1, first)
            smallest, largest = min(gaps[k + 1][0], jump), max(gaps[k + 1][1], jump)
            easy = closed(first % size, (n - 1) * step + inner, n * counts[k + 1], smallest, largest)
            if easy is not None:
                return easy

            def term(c: int, last: bool) -> int:
                at = (first + c * step) % size
                joined = 0 if last else int((at + inner) // size == (at + step) // size)
                return whole(k + 1, at) - joined

            period = size // math.gcd(step % size, size) if step % size else 1
            reps, extra = divmod(n - 1, period)  # the last copy has no junction to a next one
            spend((period if reps else 0) + extra + 1)
            total = reps * sum(term(c, False) for c in range(period)) if reps else 0
            total += sum(term(c, False) for c in range(extra))
            return total + term(n - 1, True)

        def prefix(k: int, first: int, n: int) -> int:
            """Nodes of the first ``n`` points of runs k.. starting at ``first``."""
            if n == counts[k]:
                return whole(k, first)
            full, rest = divmod(n, counts[k + 1])
            total = along(k, first, full) if full else 0
            if rest:
                start = first + full * runs[k][1]
                total += prefix(k + 1, start, rest)
                if full:
                    end = first + (full - 1) * runs[k][1] + spans[k + 1]
                    total -= int(end // size == start // size)
            return total

        def before(n: int) -> int:
            return prefix(0, base, n) if n else 0

        def rank(i: int) -> int:
            """The rank at position ``i`` of the whole lattice."""
            r = base
            for d, st in reversed(runs):
                i, c = divmod(i, d)
                r += c * st
            return r

        try:
            count = before(stop) - before(start)
        except _OverBudget:
            return None
        shared = start and rank(start - 1) // size == rank(start) // size  # both in one node
        return count + int(bool(shared))

    def span(self, stride: int, size: int) -> Span:
        """The span of an axis's groups, in closed form (:func:`blocks_spanned`), O(log ranks per domain)."""
        self._check_run(stride, size)
        nodes = blocks_spanned(stride, size, self.world_size, self.ranks_per_node)
        if self.nodes_per_domain == 1:
            return Span(nodes, nodes)
        return Span(nodes, blocks_spanned(stride, size, self.world_size, self.ranks_per_domain))


class ListedPlacement(Placement):
    """The node of every rank, as given: host names gathered at run time, a hostfile, Slurm's cyclic
    distribution, nodes of different sizes.

    Args:
        node_of_rank: The node of each rank, rank 0 first; nodes are numbered from 0
            and each holds at least one rank.
        nodes_per_domain: Nodes in each NVLink domain (1: the domain is the node).

    Raises:
        InvalidArgumentError: no ranks, a negative node, or a node number skipped.

    >>> m = ListedPlacement.from_hosts(["a", "b", "a", "b"])  # cyclic over two hosts
    >>> m.nodes, m.ranks_of_node(1), m.local_rank(3), m.is_block
    (2, [1, 3], 1, False)
    >>> m.span(stride=1, size=2)  # neighbouring ranks are on different nodes
    Span(nodes=2, domains=2)
    """

    __slots__ = ("_ids", "_members", "_starts")

    def __init__(self, node_of_rank: Sequence[int] | np.ndarray, nodes_per_domain: int = 1) -> None:
        import numpy as np

        ids = np.asarray(node_of_rank)
        if ids.ndim != 1 or ids.size == 0:
            raise InvalidArgumentError("a placement needs the node of each rank, one number per rank")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"node numbers must be integers, got {ids.dtype} values")
        if ids.min() < 0:
            raise InvalidArgumentError(f"node numbers must be at least 0, got {int(ids.min())}")
        counts = np.bincount(ids)
        if not counts.all():
            raise InvalidArgumentError(
                f"node numbers must run from 0 without gaps: node {int(np.argmin(counts))} holds no rank"
            )
        super().__init__(int(ids.size), nodes_per_domain)
        self._ids = ids.astype(np.int64)
        self._members = np.argsort(self._ids, kind="stable")  # ranks grouped by node, ascending in each
        self._starts = np.concatenate(([0], np.cumsum(counts)))

    @classmethod
    def from_hosts(cls, hosts: Sequence[str], nodes_per_domain: int = 1) -> ListedPlacement:
        """The placement of ranks on the hosts ``hosts`` (rank 0 first), nodes numbered as first seen."""
        index: dict[str, int] = {}
        return cls([index.setdefault(h, len(index)) for h in hosts], nodes_per_domain)

    def __repr__(self) -> str:
        return f"ListedPlacement({self._ids.tolist()!r}, nodes_per_domain={self.nodes_per_domain})"

    @property
    def nodes(self) -> int:
        return len(self._starts) - 1

    @property
    def is_block(self) -> bool:
        import numpy as np

        full = int(self._starts[1])
        return bool(np.array_equal(self._ids, np.arange(self.world_size) // full))

    def node_of(self, rank: int) -> int:
        return int(self._ids[self._check_rank(rank)])

    def ranks_of_node(self, node: int) -> list[int]:
        n = self._check_node(node)
        return [int(r) for r in self._members[self._starts[n] : self._starts[n + 1]]]

    def node_ids(self, ranks: np.ndarray) -> np.ndarray:
        ids: np.ndarray = self._ids[ranks]
        return ids

    def describe(self) -> str:
        return f"{self.world_size} ranks on {self.nodes} nodes"


class MeasuredPlacement(ListedPlacement):
    """A placement measured at run time: the host name of every rank and, where known, its
    NVLink domain.

    Nodes are the distinct hosts, numbered as first seen. When every rank knows its
    domain, domains are those measured (numbered as first seen) instead of runs of
    ``nodes_per_domain`` nodes; otherwise each host is its own domain.

    Args:
        hosts: The host name of each rank, rank 0 first.
        domains: The domain identity of each rank (any hashable values), or ``None``.

    >>> m = MeasuredPlacement(["a", "b", "a", "b"])
    >>> m.hosts, m.host_of(3), m.ranks_of_host("a"), m.is_block, m.pattern()
    (['a', 'b'], 'b', [0, 2], False, 'cyclic over 2 hosts')
    >>> MeasuredPlacement(["a", "a", "b"]).pattern(), MeasuredPlacement(["a", "b", "b"]).pattern()
    ('block: 2 ranks per host, 1 on the last', 'uneven: 1, 2 ranks per host, in rank order')
    """

    __slots__ = ("_domain_ids", "hosts")

    def __init__(self, hosts: Sequence[str], domains: Sequence[Any] | np.ndarray | None = None) -> None:
        import numpy as np

        index: dict[str, int] = {}
        super().__init__([index.setdefault(str(h), len(index)) for h in hosts])
        #: The distinct host names, node ``i`` first-seen ``i``-th.
        self.hosts: list[str] = list(index)
        self._domain_ids: np.ndarray | None = None
        if domains is not None:
            if len(domains) != self.world_size:
                raise InvalidArgumentError(
                    f"domains must give one entry per rank: {len(domains)} given for {self.world_size} ranks"
                )
            seen: dict[Any, int] = {}
            numbered = [seen.setdefault(d, len(seen)) for d in list(domains)]
            self._domain_ids = np.asarray(numbered, dtype=np.int64)

    def __repr__(self) -> str:
        return f"MeasuredPlacement({[self.hosts[i] for i in self._ids.tolist()]!r})"

    def host_of(self, rank: int) -> str:
        """The host name of rank ``rank``."""
        return self.hosts[self.node_of(rank)]

    def ranks_of_host(self, host: str) -> list[int]:
        """The ranks on host ``host``, ascending.

        Raises:
            InvalidArgumentError: no rank runs on ``host``.
        """
        if host not in self.hosts:
            raise InvalidArgumentError(f"no rank runs on host {host!r}; the hosts are {self.hosts[:8]}")
        return self.ranks_of_node(self.hosts.index(host))

    @property
    def domains(self) -> int:
        if self._domain_ids is None:
            return self.nodes
        return int(self._domain_ids.max()) + 1

    def domain_of(self, rank: int) -> int:
        if self._domain_ids is None:
            return self.node_of(rank)
        return int(self._domain_ids[self._check_rank(rank)])

    def domain_of_node(self, node: int) -> int:
        return self.domain_of(self.ranks_of_node(node)[0])

    def domain_ids(self, ranks: np.ndarray) -> np.ndarray:
        if self._domain_ids is None:
            return self.node_ids(ranks)
        ids: np.ndarray = self._domain_ids[ranks]
        return ids

    def pattern(self) -> str:
        """How ranks fill the hosts, in words: block, uneven, cyclic over N hosts, or irregular."""
        import numpy as np

        ids, n = self._ids, self.nodes
        sizes = np.diff(self._starts)
        if self.is_block:
            last = int(sizes[-1])
            full = int(sizes[0])
            return f"block: {full} ranks per host" + ("" if last == full else f", {last} on the last")
        if np.array_equal(ids, np.arange(self.world_size) % n):
            return f"cyclic over {n} hosts"
        if bool((np.diff(ids) >= 0).all()):
            shown = ", ".join(map(str, sizes[:8].tolist())) + (", ..." if n > 8 else "")
            return f"uneven: {shown} ranks per host, in rank order"
        return f"irregular over {n} hosts"


# --------------------------------------------------------------------------- machines
def _check_run(world_size: int, stride: int, size: int) -> None:
    if stride < 1 or size < 1 or world_size % (stride * size):
        raise InvalidArgumentError(
            f"groups of {size} ranks {stride} apart do not tile {world_size} ranks: "
            "stride and size must be at least 1 and their product must divide the world size"
        )


def _real(what: str, value: Any, *, low: float, strict: bool, unit: str) -> float:
    """``value`` as a finite float of at least (above, if ``strict``) ``low``; ``what`` names it."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    number = math.nan
    if not bad:
        try:
            number = float(value)
        except OverflowError:
            bad = True
    if bad or not math.isfinite(number) or number < low or (strict and number == low):
        bound = f"above {low:g}" if strict else f"at least {low:g}"
        raise InvalidArgumentError(f"{what} must be a finite number {bound}{unit}, got {value!r}")
    return number


@dataclass(frozen=True)
class Level:
    """One level of a machine and the links that join the units of the level below inside it.

    A group whose members all sit in one unit of this level, but not in one unit of
    the level below, moves its data over this level's links: each rank sends
    ``bandwidth / oversubscription`` bytes per second and pays ``latency`` per message.

    Attributes:
        name: The level's name (``"node"``, ``"domain"``, ``"leaf"``, ``"pod"``, ...).
        size: Units of the level below in one unit of this one (ranks, for the node;
            nodes, for the NVLink domain); ``None`` for the top level, which holds every rank.
        bandwidth: Bytes per second each rank sends over these links, one direction.
        latency: Seconds per message (per step of a ring).
        oversubscription: Downlink to uplink ratio of the switches of this level
            (1: non-blocking, full bisection; 7: each rank gets a seventh of ``bandwidth``).
        note: Where the figures come from.

    Raises:
        InvalidArgumentError: an empty name, a size below 1, a bandwidth that is not a
            finite positive number, a negative or non-finite latency, an oversubscription below 1.

    >>> Level("cluster", None, 50e9, 9.6e-6, oversubscription=2).effective_bandwidth
    25000000000.0
    """

    name: str
    size: int | None
    bandwidth: float
    latency: float
    oversubscription: float = 1.0
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name.strip() != self.name:
            raise InvalidArgumentError(f"a level needs a name (a word), got {self.name!r}")
        what = f"level {self.name!r}"
        if self.size is not None:
            object.__setattr__(self, "size", positive_int(f"{what}: size", self.size))
        object.__setattr__(
            self,
            "bandwidth",
            _real(f"{what}: bandwidth", self.bandwidth, low=0, strict=True, unit=" (bytes/s)"),
        )
        object.__setattr__(
            self, "latency", _real(f"{what}: latency", self.latency, low=0, strict=False, unit=" (s)")
        )
        object.__setattr__(
            self,
            "oversubscription",
            _real(
                f"{what}: oversubscription",
                self.oversubscription,
                low=1,
                strict=False,
                unit=" (1: non-blocking)",
            ),
        )
        if not isinstance(self.note, str):
            raise TypeError(f"{what}: note must be a str, got {self.note!r}")

    @property
    def effective_bandwidth(self) -> float:
        """Bytes per second each rank gets over this level's links: ``bandwidth / oversubscription``."""
        return self.bandwidth / self.oversubscription

    def time(self, nbytes: float, messages: float) -> float:
        """Seconds to move ``nbytes`` in ``messages`` messages over this level (the alpha-beta model).

        >>> Level("x", None, 1e9, 1e-6).time(2e9, 10)
        2.00001
        """
        return messages * self.latency + nbytes / self.effective_bandwidth

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "bandwidth": self.bandwidth,
            "latency": self.latency,
            "oversubscription": self.oversubscription,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Level:
        """A level from :meth:`to_dict`'s keys (``size``, ``oversubscription`` and ``note`` may be left out).

        Raises:
            InvalidArgumentError: a key that is not a field, or a missing one.
        """
        if not isinstance(d, Mapping):
            raise InvalidArgumentError(f"a level is an object of its fields, got {d!r}")
        fields = ("name", "size", "bandwidth", "latency", "oversubscription", "note")
        unknown = [k for k in d if k not in fields]
        if unknown:
            raise InvalidArgumentError(
                f"level {d.get('name', '?')!r}: unknown field {unknown[0]!r} "
                f"(the fields are {', '.join(fields)})"
            )
        missing = [k for k in ("name", "bandwidth", "latency") if k not in d]
        if missing:
            raise InvalidArgumentError(f"level {d.get('name', '?')!r} needs {', '.join(missing)}")
        return cls(
            name=d["name"],
            size=d.get("size"),
            bandwidth=d["bandwidth"],
            latency=d["latency"],
            oversubscription=d.get("oversubscription", 1.0),
            note=d.get("note", ""),
        )


class Reach(NamedTuple):
    """How far the groups of an axis reach on a :class:`Machine`.

    Attributes:
        spans: For each level but the top, the most units of it one group touches.
        tier: Index of the level whose links the groups use: the first whose span is 1
            (the top level when none is).
    """

    spans: tuple[int, ...]
    tier: int


@dataclass(frozen=True)
class Machine:
    """The levels of a machine, fastest first: the node, the NVLink domain, then the network levels.

    ``levels[0]`` is the node (its size: ranks per node), ``levels[1]`` the NVLink
    domain (its size: nodes per domain; 1 when the domain is the node), and every
    further level groups units of the one below (a leaf or rail group of domains, a
    pod of leaves, ...); the last has no size and holds every rank. Ranks fill the
    units in order (:class:`BlockPlacement`), so a unit of every level is a block of
    consecutive ranks, and spans over every level follow in closed form.

    Attributes:
        name: A name for people (a preset's name, or the file's ``"name"``).
        levels: The levels (see above).
        source: Where the figures come from.

    Raises:
        InvalidArgumentError: fewer than three levels, a size missing below the top
            or given on it, a level name used twice.

    >>> m = Machine.default(ranks_per_node=8, nodes_per_domain=9)
    >>> m.blocks, m.reach(stride=8, size=9, world_size=144)
    ((8, 72), Reach(spans=(9, 1), tier=1))
    """

    name: str
    levels: tuple[Level, ...]
    source: str = ""

    def __post_init__(self) -> None:
        levels = tuple(self.levels)
        object.__setattr__(self, "levels", levels)
        if len(levels) < 3 or not all(isinstance(lv, Level) for lv in levels):
            raise InvalidArgumentError(
                "a machine has at least three levels: the node, the NVLink domain and the network, "
                f"got {[getattr(lv, 'name', lv) for lv in levels]}"
            )
        for lv in levels[:-1]:
            if lv.size is None:
                raise InvalidArgumentError(
                    f"level {lv.name!r} needs a size: only the top level ({levels[-1].name!r}) has none"
                )
        if levels[-1].size is not None:
            raise InvalidArgumentError(
                f"the top level {levels[-1].name!r} holds every rank, so it has no size "
                f"(got {levels[-1].size})"
            )
        names = [lv.name for lv in levels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidArgumentError(f"level name {twice[0]!r} is used twice in machine {self.name!r}")

    # ------------------------------------------------------------------ shape
    @property
    def ranks_per_node(self) -> int:
        """Ranks on each node (the node level's size)."""
        return self._size(0)

    @property
    def nodes_per_domain(self) -> int:
        """Nodes in each NVLink domain (the domain level's size)."""
        return self._size(1)

    @property
    def ranks_per_domain(self) -> int:
        """Ranks in each NVLink domain."""
        return self.ranks_per_node * self.nodes_per_domain

    def _size(self, i: int) -> int:
        size = self.levels[i].size
        assert size is not None  # every level but the top has one (checked at construction)
        return size

    @functools.cached_property
    def blocks(self) -> tuple[int, ...]:
        """Ranks in one unit of each level but the top, fastest first: ``(per node, per domain, ...)``."""
        out = []
        acc = 1
        for i in range(len(self.levels) - 1):
            acc *= self._size(i)
            out.append(acc)
        return tuple(out)

    def index(self, name: str) -> int:
        """The position of the level called ``name``.

        Raises:
            InvalidArgumentError: no level has that name.
        """
        for i, lv in enumerate(self.levels):
            if lv.name == name:
                return i
        raise InvalidArgumentError(
            f"machine {self.name!r} has no level {name!r}; "
            f"its levels are {', '.join(lv.name for lv in self.levels)}"
        )

    def with_counts(self, ranks_per_node: int | None = None, nodes_per_domain: int | None = None) -> Machine:
        """The same links with another number of ranks per node or nodes per domain.

        >>> machine("gb200-nvl72").with_counts(nodes_per_domain=16).ranks_per_domain
        64
        """
        levels = list(self.levels)
        for i, count in ((0, ranks_per_node), (1, nodes_per_domain)):
            if count is not None and count != levels[i].size:
                levels[i] = _replace(levels[i], size=count)
        return Machine(self.name, tuple(levels), self.source)

    def with_links(self, changes: Mapping[str, Mapping[str, Any]]) -> Machine:
        """The same machine with some levels' ``bandwidth``, ``latency`` or ``oversubscription`` replaced.

        Raises:
            InvalidArgumentError: an unknown level or field, or a bad value.

        >>> Machine.default(8).with_links({"network": {"bandwidth": 25e9}}).levels[2].bandwidth
        25000000000.0
        """
        levels = list(self.levels)
        for name, fields in changes.items():
            i = self.index(name)
            unknown = [k for k in fields if k not in ("bandwidth", "latency", "oversubscription")]
            if unknown:
                raise InvalidArgumentError(
                    f"level {name!r}: unknown field {unknown[0]!r} (bandwidth, latency, oversubscription)"
                )
            levels[i] = _replace(levels[i], **dict(fields))
        return Machine(self.name, tuple(levels), self.source)

    def placement(self, world_size: int) -> BlockPlacement:
        """The ranks of a job of ``world_size`` ranks on this machine's nodes and domains, in order."""
        return BlockPlacement(world_size, self.ranks_per_node, self.nodes_per_domain)

    # ------------------------------------------------------------------ reach
    def reach(self, stride: int, size: int, world_size: int) -> Reach:
        """How far the groups ``{b + k*stride : k < size}`` of an axis reach, in closed form.

        Raises:
            InvalidArgumentError: ``stride * size`` does not divide the world size.

        >>> hgx = machine("hgx-h100")
        >>> hgx.reach(1, 8, 1024), hgx.reach(8, 128, 1024)
        (Reach(spans=(1, 1, 1, 1), tier=0), Reach(spans=(128, 128, 4, 1), tier=3))
        """
        _check_run(world_size, stride, size)
        spans = tuple(blocks_spanned(stride, size, world_size, block) for block in self.blocks)
        tier = next((i for i, n in enumerate(spans) if n == 1), len(spans))
        return Reach(spans, tier)

    def mean_spans(self, stride: int, size: int, world_size: int) -> tuple[Fraction, ...]:
        """For each level but the top, the units one group of the axis touches on average (exact).

        >>> Machine.default(8, 9).mean_spans(8, 2, 144)
        (Fraction(2, 1), Fraction(10, 9))
        """
        _check_run(world_size, stride, size)
        return tuple(mean_blocks_spanned(stride, size, world_size, block) for block in self.blocks)

    def crossing(self, stride: int, size: int, world_size: int) -> tuple[Fraction, ...]:
        """For each level but the top, the fraction of the axis's groups that touch more than one unit of it.

        A group with ``stride < block`` and extent ``L = (size - 1) * stride < block`` touches
        one or two blocks, so the fraction touching two is the mean span less one
        (:func:`mean_blocks_spanned`); any other group touches at least two. Exact, in
        closed form.

        >>> Machine.default(8, 9).crossing(8, 2, 144)  # {b, b + 8}: all cross a node, 1 in 9 a domain
        (Fraction(1, 1), Fraction(1, 9))
        """
        _check_run(world_size, stride, size)
        return tuple(Fraction(*level_reach(stride, size, world_size, b)[1:]) for b in self.blocks)

    def reach_and_crossing(self, stride: int, size: int, world_size: int) -> tuple[Reach, tuple[float, ...]]:
        """:meth:`reach` and :meth:`crossing` (as floats) in one pass of floor sums per level."""
        _check_run(world_size, stride, size)
        levels = [level_reach(stride, size, world_size, b) for b in self.blocks]
        spans = tuple(most for most, _, _ in levels)
        tier = next((i for i, n in enumerate(spans) if n == 1), len(spans))
        return Reach(spans, tier), tuple(crossing / groups for _, crossing, groups in levels)

    def reach_and_crossing_many(
        self, strides: np.ndarray, size: int, world_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`reach_and_crossing` at many strides of one axis size: ``(spans, tier, crossing)``, arrays
        of one row per level but the top (spans, crossing) or one entry (tier) per stride.

        The same answers as the scalar method, value for value (tests/test_planner_bounds.py):
        :func:`level_reach_many`'s exact integers, and each crossing fraction divided as Python
        divides two integers (correctly rounded), which NumPy's float division is only while
        both fit a double's 53 bits; beyond, the fraction is divided in Python.

        Raises:
            InvalidArgumentError: a ``stride * size`` that does not divide the world size.
        """
        import numpy as np

        s = np.asarray(strides, dtype=np.int64).reshape(-1)
        levels = len(self.blocks)
        spans = np.ones((levels, s.size), dtype=np.int64)
        crossing = np.zeros((levels, s.size), dtype=np.float64)
        if world_size > ARRAY_WORLD_LIMIT:  # the array twins' floor divisions could overflow: scalar path
            for j, stride in enumerate(s.tolist()):
                reach, fractions = self.reach_and_crossing(stride, size, world_size)
                spans[:, j], crossing[:, j] = reach.spans, fractions
        else:
            wide = s > world_size // max(size, 1)  # no product below overflows
            bad = (s < 1) | wide | (world_size % np.where(wide, 1, np.maximum(s, 1) * max(size, 1)) != 0)
            if size < 1 or bad.any():
                _check_run(world_size, int(s[bad][0]) if bad.any() else 1, size)
            done: dict[int, int] = {}  # a level of size 1 has the blocks of the one below
            for i, block in enumerate(self.blocks):
                if block in done:
                    spans[i], crossing[i] = spans[done[block]], crossing[done[block]]
                    continue
                done[block] = i
                most, crossed, groups = level_reach_many(s, size, world_size, block)
                spans[i] = most
                if groups < 1 << 53:
                    crossing[i] = crossed.astype(np.float64) / float(groups)
                else:  # 0 and 1 exactly; the rest divided as Python divides
                    crossing[i] = crossed == groups
                    part = (crossed != 0) & (crossed != groups)
                    crossing[i, part] = [c / groups for c in crossed[part].tolist()]
        ones = spans == 1
        tier = np.where(ones.any(axis=0), ones.argmax(axis=0), levels)
        return spans, tier, crossing

    def crossing_of(self, topo: ProcessTopology, axes: AxesArg) -> tuple[Fraction, ...]:
        """:meth:`crossing` for the groups of ``topo`` over a set of axes (closed form for one run,
        else by listing the groups, as :meth:`reach_of`)."""
        import numpy as np

        world = topo.world_size()
        dims, strides = topo.dims, topo.strides
        chosen = sorted(i for i in topo.axis_indices(axes) if dims[i] > 1)
        if not chosen:
            return (Fraction(0),) * len(self.blocks)
        if chosen == [i for i in range(chosen[0], chosen[-1] + 1) if dims[i] > 1]:
            return self.crossing(strides[chosen[-1]], topo.group_size(axes), world)
        if world > ENUMERATION_LIMIT:
            raise InvalidArgumentError(
                f"the reach of the axes {[topo.axes[i] for i in chosen]} is found by listing every group, "
                f"which is limited to {ENUMERATION_LIMIT:,} ranks; this topology has {world:,}"
            )
        groups = topo.groups(axes)
        out = []
        for block in self.blocks:
            units = groups // block
            out.append(Fraction(int(np.count_nonzero(units.min(axis=1) != units.max(axis=1))), len(units)))
        return tuple(out)

    def reach_of(self, topo: ProcessTopology, axes: AxesArg) -> Reach:
        """How far the groups of ``topo`` over one axis or a set of axes reach.

        Axes that are neighbours in the order (size-1 axes between them do not count)
        make one run, answered in closed form; other sets are answered by listing
        their groups, up to :data:`ENUMERATION_LIMIT` ranks.

        Raises:
            UnknownAxisError: an axis the topology does not have.
            InvalidArgumentError: a set of axes that is not one run, on more ranks than
                :data:`ENUMERATION_LIMIT`.
        """
        world = topo.world_size()
        dims, strides = topo.dims, topo.strides
        chosen = sorted(i for i in topo.axis_indices(axes) if dims[i] > 1)
        if not chosen:
            return Reach((1,) * len(self.blocks), 0)
        if chosen == [i for i in range(chosen[0], chosen[-1] + 1) if dims[i] > 1]:
            return self.reach(strides[chosen[-1]], topo.group_size(axes), world)
        if world > ENUMERATION_LIMIT:
            raise InvalidArgumentError(
                f"the reach of the axes {[topo.axes[i] for i in chosen]} is found by listing every group, "
                f"which is limited to {ENUMERATION_LIMIT:,} ranks; this topology has {world:,}"
            )
        groups = topo.groups(axes)
        spans = tuple(_most_distinct(groups // block) for block in self.blocks)
        return Reach(spans, next((i for i, n in enumerate(spans) if n == 1), len(spans)))

    # ------------------------------------------------------------------ words and files
    def describe(self) -> str:
        """The levels in one line, e.g. ``"node 8 ranks 450 GB/s | domain = node | network 50 GB/s"``.

        >>> print(machine("meta-h100-roce").describe())  # doctest: +NORMALIZE_WHITESPACE
        node 8 ranks 450 GB/s 3.4 us | domain = node | rack 2 nodes (16 ranks) 50 GB/s 9.6 us |
        pod 192 racks (3,072 ranks) 50 GB/s 9.6 us | cluster 50 GB/s 9.6 us 7:1 oversubscribed
        """
        parts = []
        for i, lv in enumerate(self.levels):
            if lv.size == 1 and i > 0:
                parts.append(f"{lv.name} = {self.levels[i - 1].name}")
                continue
            text = lv.name
            if lv.size is not None:
                below = "rank" if i == 0 else self.levels[i - 1].name
                below = "node" if i > 0 and self._size(i - 1) == 1 and i == 2 else below
                text += f" {lv.size:,} {below}{'s' if lv.size != 1 else ''}"
                if i > 0:
                    text += f" ({self.blocks[i]:,} ranks)"
            text += f" {_rate(lv.bandwidth)} {seconds_text(lv.latency)}"
            if lv.oversubscription != 1:
                text += f" {lv.oversubscription:g}:1 oversubscribed"
            parts.append(text)
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary; :meth:`from_dict` (and a machine file) reads it back."""
        return {"name": self.name, "source": self.source, "levels": [lv.to_dict() for lv in self.levels]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Machine:
        """A machine from ``{"name": ..., "source": ..., "levels": [{level}, ...]}`` (see docs/machine.md).

        Raises:
            InvalidArgumentError: a key that is not known, no levels, or a bad level.
        """
        if not isinstance(d, Mapping):
            raise InvalidArgumentError(f"a machine is an object with its levels, got {type(d).__name__}")
        unknown = [k for k in d if k not in ("name", "source", "levels")]
        if unknown:
            raise InvalidArgumentError(f"machine: unknown field {unknown[0]!r} (name, source, levels)")
        levels = d.get("levels")
        if not isinstance(levels, Sequence) or isinstance(levels, str):
            raise InvalidArgumentError("a machine needs its levels: a list of objects, the node first")
        name = d.get("name", "custom")
        if not isinstance(name, str) or not isinstance(d.get("source", ""), str):
            raise InvalidArgumentError("a machine's name and source are text")
        return cls(name, tuple(Level.from_dict(lv) for lv in levels), d.get("source", ""))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Machine:
        """A machine from a JSON file, or a TOML file where :mod:`tomllib` exists (Python 3.11+).

        Raises:
            InvalidArgumentError: the file cannot be read or parsed, or describes no machine.
        """
        text = os.fspath(path)
        try:
            with open(text, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read machine file {text!r}: {exc.strerror}") from None
        if text.endswith(".toml"):
            try:
                import tomllib  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                raise InvalidArgumentError(
                    f"machine file {text!r}: TOML needs Python 3.11 or later (tomllib); write it as JSON"
                ) from None
            try:
                data = tomllib.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise InvalidArgumentError(f"machine file {text!r} is not TOML: {exc}") from None
        else:
            import json

            try:
                data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
            except (UnicodeDecodeError, ValueError) as exc:
                raise InvalidArgumentError(f"machine file {text!r} is not JSON: {exc}") from None
        data = dict(data) if isinstance(data, Mapping) else data
        if isinstance(data, dict):
            data.setdefault("name", os.path.splitext(os.path.basename(text))[0])
        return cls.from_dict(data)

    @classmethod
    def default(cls, ranks_per_node: int, nodes_per_domain: int = 1) -> Machine:
        """Nodes of H100-class NVLink joined into NVLink domains, one flat network above (see docs/plan.md).

        >>> [lv.name for lv in Machine.default(8).levels]
        ['node', 'domain', 'network']
        """
        return Machine(
            "default",
            (
                Level("node", ranks_per_node, *_NVLINK4, note=_NVLINK4_NOTE),
                Level("domain", nodes_per_domain, *_NVLINK4, note=_DOMAIN_NOTE),
                Level("network", None, *_NDR, note=_NDR_NOTE),
            ),
            "proctopo's default: NVLink 4 in the node and the NVLink domain, InfiniBand NDR between domains",
        )


def _replace(level: Level, **changes: Any) -> Level:
    fields = level.to_dict()
    fields.update(changes)
    return Level(**fields)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a machine can have")


def _rate(bandwidth: float) -> str:
    for unit, scale in (("TB/s", 1e12), ("GB/s", 1e9), ("MB/s", 1e6)):
        if bandwidth >= scale:
            return f"{bandwidth / scale:.3g} {unit}"
    return f"{bandwidth:.3g} B/s"


def seconds_text(value: float) -> str:
    """A time in seconds as text with its unit (a level's latency, a step's communication).

    >>> seconds_text(0.0123), seconds_text(2.5e-6), seconds_text(0)
    ('12.3 ms', '2.5 us', '0 s')
    """
    if value == 0:
        return "0 s"
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


# --------------------------------------------------------------------------- presets
#: NVLink 4 on H100 SXM: 900 GB/s per GPU, both directions together (NVIDIA H100 datasheet),
#: so 450 GB/s each way; 3.4 us per ring step over NVLink (NCCL's tuning model, ring
#: algorithm, Simple protocol: ``hwLat`` in NVIDIA/nccl ``src/graph/tuning.cc``).
_NVLINK4 = (450e9, 3.4e-6)
_NVLINK4_NOTE = "NVLink 4 (H100 SXM): 900 GB/s per GPU both ways; NCCL ring latency over NVLink"
_DOMAIN_NOTE = "an NVLink Switch domain gives each GPU its NVLink bandwidth to every GPU in it"
#: InfiniBand NDR, 400 Gb/s = 50 GB/s per GPU (one ConnectX-7 per GPU); 9.6 us per ring step
#: over the network (the same NCCL table, network).
_NDR = (50e9, 9.6e-6)
_NDR_NOTE = "InfiniBand NDR 400 Gb/s per GPU (ConnectX-7); NCCL ring latency over the network"
#: NVLink 5 on GB200: 1.8 TB/s per GPU both ways (NVIDIA GB200 NVL72), 900 GB/s each way.
_NVLINK5 = (900e9, 3.4e-6)


def _presets() -> dict[str, Machine]:
    hgx = Machine(
        "hgx-h100",
        (
            Level("node", 8, *_NVLINK4, note="HGX H100 8-GPU: " + _NVLINK4_NOTE),
            Level("domain", 1, *_NVLINK4, note="the NVLink domain is the node"),
            Level(
                "leaf",
                32,
                *_NDR,
                note="a DGX SuperPOD scalable unit of 32 nodes taken as one block (its rails, GPU i of "
                "every node on leaf switch i, are not modelled: a rail is a stride pattern), non-blocking; "
                + _NDR_NOTE,
            ),
            Level(
                "spine", 4, *_NDR, note="4 scalable units (128 nodes) under one spine layer, full fat tree"
            ),
            Level("core", None, *_NDR, note="a core layer above the spines (larger SuperPODs), non-blocking"),
        ),
        "NVIDIA DGX SuperPOD with DGX H100 reference architecture (RA-11333-001): scalable units of 32 "
        "nodes, rail-optimised full fat-tree InfiniBand NDR compute fabric, 400 Gb/s per GPU; NVIDIA H100 "
        "datasheet (NVLink 900 GB/s); latencies from NCCL's tuning model",
    )
    nvl72 = Machine(
        "gb200-nvl72",
        (
            Level(
                "node",
                4,
                *_NVLINK5,
                note="a GB200 compute tray: 2 Grace-Blackwell superchips, 4 GPUs; NVLink 5, 1.8 TB/s per GPU",
            ),
            Level(
                "domain",
                18,
                *_NVLINK5,
                note="NVL72: 18 compute trays, 72 GPUs in one NVLink domain through 9 NVLink switch trays",
            ),
            Level(
                "leaf",
                8,
                *_NDR,
                note="a DGX SuperPOD scalable unit of 8 GB200 NVL72 racks (576 GPUs); " + _NDR_NOTE,
            ),
            Level("spine", 16, *_NDR, note="16 scalable units (128 racks, 9,216 GPUs)"),
            Level("core", None, *_NDR, note="beyond 128 racks"),
        ),
        "NVIDIA GB200 NVL72 (72 Blackwell GPUs in one NVLink domain, NVLink 5 at 1.8 TB/s per GPU); NVIDIA "
        "DGX SuperPOD with DGX GB200 reference architecture (scalable units of 8 racks, InfiniBand NDR "
        "400 Gb/s compute fabric, up to 128 racks); latencies from NCCL's tuning model",
    )
    roce = Machine(
        "meta-h100-roce",
        (
            Level("node", 8, *_NVLINK4, note="Grand Teton server: 8 H100 GPUs on NVLink"),
            Level("domain", 1, *_NVLINK4, note="the NVLink domain is the node"),
            Level(
                "rack",
                2,
                *_NDR,
                note="two servers (16 GPUs) on one top-of-rack switch, RoCE 400 Gb/s per GPU",
            ),
            Level("pod", 192, *_NDR, note="192 racks (3,072 GPUs) under cluster switches, full bisection"),
            Level(
                "cluster",
                None,
                *_NDR,
                oversubscription=7.0,
                note="8 pods under aggregation switches, oversubscribed 1:7",
            ),
        ),
        "Meta's 24K-GPU RoCE cluster on which Llama 3 405B was trained (Dubey et al., The Llama 3 herd of "
        "models, arXiv:2407.21783, section 3.3.1: three-layer Clos, 16 GPUs per rack, pods of 3,072 GPUs "
        "with full bisection, 1:7 oversubscription between pods; 400 Gb/s per GPU)",
    )
    return {m.name: m for m in (hgx, nvl72, roce)}


#: Documented machines by name (sources in each machine's ``source`` and in docs/machine.md).
PRESETS: dict[str, Machine] = _presets()


def machine(spec: str | os.PathLike[str] | Machine | Mapping[str, Any]) -> Machine:
    """A machine: a :data:`PRESETS` name, a JSON (or TOML) machine file, a mapping, or a :class:`Machine`.

    Raises:
        InvalidArgumentError: a name that is neither a preset nor a readable file, or a bad description.

    >>> machine("gb200-nvl72").ranks_per_domain
    72
    >>> machine("dgx-a100")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    proctopo.errors.InvalidArgumentError: unknown machine 'dgx-a100': not a preset (hgx-h100, ...) nor a file
    """
    if isinstance(spec, Machine):
        return spec
    if isinstance(spec, Mapping):
        return Machine.from_dict(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return PRESETS[spec]
    if not os.path.exists(spec):
        raise InvalidArgumentError(
            f"unknown machine {os.fspath(spec)!r}: not a preset ({', '.join(PRESETS)}) nor a file"
        )
    return Machine.from_file(spec)
