"""Hardware-aware ranking of axis orders, and the communicator budget of each (pure arithmetic).

Given the sizes of the parallel axes (some may be left free, ``0``, and filled as
MPI's ``Dims_create`` fills them), the stack whose meaning they have (Megatron,
torchtitan, DeepSpeed, or one plain grid) and the machine (:mod:`proctopo.machine`:
nodes, NVLink domains and network levels, a documented preset or a machine file),
:func:`plan` places orders of the axes on the ranks, finds for each axis's traffic
how many units of every level one of its groups spans and whose links it uses, and
ranks the orders by the communication time a training step waits for: each demand's
alpha-beta time on its level, times the part of it that compute does not hide.
Equal times share a rank; a documented tie-break picks among them. Each
:class:`Layout` is usable as it is: its :class:`~proctopo.ProcessTopology`, its order
string (fastest axis first) and the shape and names for ``init_device_mesh``;
:func:`emit` writes it in a stack's own terms (Megatron-LM's arguments, torchtitan's
``[parallelism]``, DeepSpeed's topology, shell variables).

Spans come from :mod:`proctopo.machine` in closed form, never by listing groups, and
the search runs over subsets of axes, not sequences, so a plan of 16 axes or of 2**40
ranks answers in well under a second. The model, its defaults and their sources are in
``docs/plan.md``. The package is split by concern: ``inputs`` (the vocabulary and what
:func:`plan` takes), ``model`` (traffic and cost), ``layouts`` (orders in each
stack's terms), ``search`` (which orders are ranked), ``suggest`` (splits and
refits), ``results`` (what it returns), ``render`` (the text table) and
``launchers`` (:func:`emit`).
``proctopo.plan`` is :func:`plan` itself.

>>> p = plan({"pp": 2, "dp": 2, "tp": 4}, ranks_per_node=4)
>>> best = p.layouts[0]
>>> best.megatron_order, best.mesh_shape, best.mesh_dim_names
('tp-dp-pp', (2, 2, 4), ('pp', 'dp', 'tp'))
>>> [(a.name, a.nodes, a.tier) for a in best.axes]
[('pp', 2, 'network'), ('dp', 2, 'network'), ('tp', 1, 'node')]
>>> best.topology
ProcessTopology(axes=['pp', 'dp', 'tp'], dims=[2, 2, 4])

This package never imports torch.
"""

from __future__ import annotations

from ..machine import PRESETS, TIER_NAMES, Level, Machine, blocks_spanned
from .api import plan
from .inputs import (
    COMMUNICATOR_BYTES,
    CONVENTIONS,
    DEFAULT_WEIGHTS,
    EXPOSED,
    KINDS,
    Demand,
    ModelSpec,
    kind_of,
    parse_quantity,
)
from .launchers import EMITTERS, emit
from .results import SCHEMA, AxisReport, Layout, Plan, Refit, Split
from .search import FULL_SEARCH_AXES, MAX_AXES, MAX_TOP

__all__ = [
    "COMMUNICATOR_BYTES",
    "CONVENTIONS",
    "DEFAULT_WEIGHTS",
    "EMITTERS",
    "EXPOSED",
    "FULL_SEARCH_AXES",
    "KINDS",
    "MAX_AXES",
    "MAX_TOP",
    "PRESETS",
    "SCHEMA",
    "TIER_NAMES",
    "AxisReport",
    "Demand",
    "Layout",
    "Level",
    "Machine",
    "ModelSpec",
    "Plan",
    "Refit",
    "Split",
    "blocks_spanned",
    "emit",
    "kind_of",
    "parse_quantity",
    "plan",
]
