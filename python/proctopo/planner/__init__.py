"""Hardware-aware ranking of axis orders, and the communicator budget of each (pure arithmetic).

Given the sizes of the parallel axes (some may be left free, ``0``, and filled as
MPI's ``Dims_create`` fills them) and the machine (ranks per node, nodes per NVLink
domain), :func:`plan` places every candidate order of the axes on the ranks, finds
for each axis how many nodes and NVLink domains one of its groups spans, and
ranks the orders by an alpha-beta cost: each axis's per-step traffic (from default
weights, your own, or a short model description) moves over the slowest link tier
its groups touch. Each :class:`Layout` is usable as it is: its
:class:`~proctopo.ProcessTopology`, its Megatron order string (fastest axis first),
and the shape and names for ``torch.distributed.device_mesh.init_device_mesh``.

Spans come from :mod:`proctopo.machine` in closed form, never by listing groups, so
a plan of 16,384 ranks answers in a few milliseconds. The model, its defaults and
their sources are in ``docs/plan.md``. The package is split by concern:
``inputs`` (the vocabulary and what :func:`plan` takes), ``model`` (traffic and
cost of a layout), ``search`` (which orders are ranked), ``suggest`` (splits and
refits), ``results`` (what it returns) and ``render`` (the text table).
``proctopo.plan`` is :func:`plan` itself.

>>> p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)
>>> best = p.layouts[0]
>>> best.megatron_order, best.mesh_shape, best.mesh_dim_names
('tp-dp-pp', (2, 2, 4), ('pp', 'dp', 'tp'))
>>> [(a.name, a.nodes, a.tier) for a in best.axes]
[('pp', 2, 'inter-domain'), ('dp', 2, 'inter-domain'), ('tp', 1, 'intra-node')]
>>> best.topology
ProcessTopology(axes=['pp', 'dp', 'tp'], dims=[2, 2, 4])

This package never imports torch.
"""

from __future__ import annotations

from ..machine import TIER_NAMES, blocks_spanned
from .api import plan
from .inputs import (
    COMMUNICATOR_BYTES,
    DEFAULT_TIERS,
    DEFAULT_WEIGHTS,
    KINDS,
    Demand,
    ModelSpec,
    Tier,
    kind_of,
)
from .results import SCHEMA, AxisReport, Layout, Plan, Refit, Split
from .search import FULL_SEARCH_AXES

__all__ = [
    "COMMUNICATOR_BYTES",
    "DEFAULT_TIERS",
    "DEFAULT_WEIGHTS",
    "FULL_SEARCH_AXES",
    "KINDS",
    "SCHEMA",
    "TIER_NAMES",
    "AxisReport",
    "Demand",
    "Layout",
    "ModelSpec",
    "Plan",
    "Refit",
    "Split",
    "Tier",
    "blocks_spanned",
    "kind_of",
    "plan",
]
