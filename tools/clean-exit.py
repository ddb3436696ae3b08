"""A job that ends as training scripts do, without ``grid.destroy()``: does every process exit with 0?

    torchrun --standalone --nproc-per-node 4 tools/clean-exit.py [--group-creation local]

Each process builds a ``ProcessGrid(ProcessTopology(["data", "model"], [2, 2]))``
with the given ``group_creation`` (default ``"local"``), makes one ``all_reduce``
over each of its groups, then calls ``dist.destroy_process_group()`` and leaves
the grid referenced from this module's globals until the interpreter exits, as a
script that never calls ``grid.destroy()`` does. torchrun exits with 0 only when
every process did. ``tools/exit-runs.sh`` runs it many times and counts the runs
in which a process did not exit with 0 (docs/grid.md, "Ending without destroy()").
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from proctopo import ProcessGrid, ProcessTopology
from proctopo.groups import STRATEGIES

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--group-creation", default="local", choices=STRATEGIES, help="the grid's strategy")
args = parser.parse_args()

dist.init_process_group("gloo")
grid = ProcessGrid(ProcessTopology(["data", "model"], [2, 2]), group_creation=args.group_creation)
for axis in ("data", "model"):
    value = torch.ones(1)
    dist.all_reduce(value, group=grid.get_group(axis))
    if value.item() != 2:
        raise SystemExit(f"rank {dist.get_rank()}: the {axis} group's all_reduce gave {value.item()}, not 2")
dist.destroy_process_group()
