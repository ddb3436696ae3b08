"""Where the ranks of a job sit: nodes, NVLink domains, and how far a group reaches over them.

A :class:`Placement` says, for a job of ``world_size`` ranks, which node each rank
runs on and which ranks a node holds; nodes are numbered from 0, and every
``nodes_per_domain`` consecutive nodes form an NVLink domain (a rack, an NVLink
Switch system). From that follow the number of nodes and domains, whether every
node is full, and the *span* of a group: how many nodes and domains its members
touch, the most over all the groups of an axis (or of a set of axes). The slowest
link a group uses, its *tier* (:data:`TIER_NAMES`), follows from its span.

:class:`BlockPlacement` is the placement of torchrun and of Slurm's block
distribution: ranks fill node 0, then node 1, and so on. It answers everything in
closed form, in O(1) or O(log ranks_per_node) whatever the world size.
:class:`ListedPlacement` takes the node of every rank as given (host names gathered
at run time, a hostfile, Slurm's cyclic distribution, uneven nodes) and answers by
going through the ranks. Code that asks a :class:`Placement` works with either.

This module is proctopo's one place for node and domain arithmetic. It never imports torch.

>>> m = BlockPlacement(world_size=20, ranks_per_node=8, nodes_per_domain=2)
>>> m.nodes, m.domains, m.node_of(17), m.local_rank(17), m.domain_of(17)
(3, 2, 2, 1, 1)
>>> m.ranks_of_node(2), m.partial_node()
(range(16, 20), '20 ranks on nodes of 8 ranks leave 4 on the last node')
>>> m = BlockPlacement(world_size=64, ranks_per_node=8, nodes_per_domain=4)
>>> m.span(stride=1, size=8), m.span(stride=8, size=8)
(Span(nodes=1, domains=1), Span(nodes=8, domains=2))
>>> m.span(stride=8, size=8).tier
'inter-domain'
"""

from __future__ import annotations

import abc
import bisect
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import InvalidArgumentError, RankOutOfRangeError

if TYPE_CHECKING:
    import numpy as np

    from .topology import AxesArg, ProcessTopology

__all__ = [
    "ENUMERATION_LIMIT",
    "TIER_NAMES",
    "BlockPlacement",
    "ListedPlacement",
    "Placement",
    "Span",
    "blocks_spanned",
]

#: The link tiers, fastest first: inside one node, across nodes of one NVLink domain, across domains.
TIER_NAMES: tuple[str, ...] = ("intra-node", "intra-domain", "inter-domain")

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
        """The slowest link such a group uses: ``"intra-node"``, ``"intra-domain"`` or ``"inter-domain"``.

        >>> Span(1, 1).tier, Span(2, 1).tier, Span(2, 2).tier
        ('intra-node', 'intra-domain', 'inter-domain')
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
    if size <= 1:
        return 1
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


def _most_distinct(ids: np.ndarray) -> int:
    """The most distinct values along axis 1 of an integer array, over its other positions."""
    import numpy as np

    if ids.size == 0:
        return 1
    ordered = np.sort(ids, axis=1)
    return int(np.count_nonzero(np.diff(ordered, axis=1), axis=1).max()) + 1


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
        ids = self.node_ids(groups)
        return Span(_most_distinct(ids), _most_distinct(ids // self.nodes_per_domain))

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

    def __init__(self, node_of_rank: Sequence[int], nodes_per_domain: int = 1) -> None:
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
