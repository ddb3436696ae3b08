"""What the training examples share: the data, the model, the single-process reference, the report.

Every example trains the same small regression problem for a few AdamW steps on
several CPU processes (gloo), and compares its losses with one process training
the same model, from the same weights, on the whole batch. Run one with torchrun,
for example::

    torchrun --standalone --nproc-per-node 4 examples/fsdp2_tp.py

Rank 0 prints the losses of each step next to the reference's, the largest
difference on any rank, and the communicators each set-up made per rank (see
:func:`proctopo.testing.counting_groups`); ``--out DIR`` also writes each rank's losses, the
reference's and those counts to ``DIR/rank<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from proctopo.testing import GroupCount
from torch import nn

#: Sizes of the problem: a batch of BATCH rows of IN_FEATURES, targets of OUT_FEATURES.
BATCH, IN_FEATURES, HIDDEN, OUT_FEATURES = 16, 16, 32, 8
#: AdamW's settings, the same in every stack.
ADAMW = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
STEPS = 5
SEED = 1234


def arguments(description: str, **extra: Any) -> argparse.Namespace:
    """The examples' command line: ``--steps``, ``--out`` and the example's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=STEPS, help=f"AdamW steps (default {STEPS})")
    parser.add_argument("--out", type=Path, help="write each rank's losses to OUT/rank<N>.json")
    for flag, options in extra.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", **options)
    return parser.parse_args()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The whole batch ``(inputs, targets)``, the same on every rank: a fixed smooth function plus noise."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(BATCH, IN_FEATURES, generator=gen)
    w = torch.randn(IN_FEATURES, OUT_FEATURES, generator=gen) / IN_FEATURES**0.5
    y = torch.sin(x @ w) + 0.1 * torch.randn(BATCH, OUT_FEATURES, generator=gen)
    return x, y


def rows(tensor: torch.Tensor, part: int, parts: int) -> torch.Tensor:
    """Part ``part`` of ``parts`` equal blocks of rows (a data-parallel rank's share of the batch)."""
    if tensor.shape[0] % parts:
        raise ValueError(f"{tensor.shape[0]} rows do not split into {parts} equal parts")
    size = tensor.shape[0] // parts
    return tensor[part * size : (part + 1) * size]


class SeededLinear(nn.Linear):
    """An ``nn.Linear`` whose initial weights depend only on ``seed``, on any rank, built anywhere."""

    def __init__(self, in_features: int, out_features: int, seed: int) -> None:
        super().__init__(in_features, out_features)
        gen = torch.Generator().manual_seed(SEED + seed)
        bound = in_features**-0.5
        with torch.no_grad():
            self.weight.uniform_(-bound, bound, generator=gen)
            self.bias.uniform_(-bound, bound, generator=gen)


def layers(depth: int = 2) -> list[nn.Module]:
    """The model's layers: ``depth`` seeded linears with a Tanh between each two."""
    sizes = [IN_FEATURES] + [HIDDEN] * (depth - 1) + [OUT_FEATURES]
    out: list[nn.Module] = []
    for i in range(depth):
        if i:
            out.append(nn.Tanh())
        out.append(SeededLinear(sizes[i], sizes[i + 1], seed=i))
    return out


def model(depth: int = 2) -> nn.Sequential:
    """The whole model, as one process holds it."""
    return nn.Sequential(*layers(depth))


def reference_losses(steps: int, depth: int = 2) -> list[float]:
    """One process, the whole batch, plain AdamW: the loss before each step."""
    x, y = batch()
    return train(model(depth), x, y, steps)


def train(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    loss_value: Callable[[torch.Tensor], float] | None = None,
) -> list[float]:
    """``steps`` steps of AdamW (``ADAMW``) on the MSE of ``net(x)`` against ``y``: the loss before
    each step, as ``loss_value`` reads it (default: this process's loss)."""
    opt = torch.optim.AdamW(net.parameters(), **ADAMW)  # type: ignore[arg-type]
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item() if loss_value is None else loss_value(loss))
    return losses


def _over_ranks(made: Mapping[str, GroupCount]) -> dict[str, dict[str, tuple[int, int]]]:
    """Each count of :func:`proctopo.testing.counting_groups` per set-up, as (least, most) over the ranks."""
    import torch.distributed as dist

    keys = ("communicators", "new_group", "split_group")
    local = torch.tensor([getattr(made[setup], key) for setup in made for key in keys], dtype=torch.int64)
    least, most = local.clone(), local.clone()
    dist.all_reduce(least, op=dist.ReduceOp.MIN)
    dist.all_reduce(most, op=dist.ReduceOp.MAX)
    pairs = iter(zip(least.tolist(), most.tolist()))
    return {setup: {key: next(pairs) for key in keys} for setup in made}


def _span(pair: tuple[int, int]) -> str:
    """``"3"``, or ``"2 to 3"`` when the ranks differ."""
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]} to {pair[1]}"


def report(
    name: str,
    losses: Sequence[float],
    reference: Sequence[float],
    out: Path | None,
    made: Mapping[str, GroupCount],
    **extra: Any,
) -> float:
    """Print rank 0's comparison, the largest difference on any rank and the communicators made; write
    this rank's JSON under ``out``.

    ``made`` maps each set-up the run timed (proctopo's, and the stack's own when the
    run compares them) to what :func:`proctopo.testing.counting_groups` counted on this rank; rank 0
    prints each count over the ranks ("2", or "2 to 3" when the ranks differ), then
    ``extra``, one ``key: value`` line each. Every rank must call it.

    Returns the largest difference between a loss and the reference's, over every step of every rank.
    """
    import torch.distributed as dist

    rank = dist.get_rank()
    largest = torch.tensor([max(abs(a - b) for a, b in zip(losses, reference))], dtype=torch.float64)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    diff = float(largest.item())
    spans = _over_ranks(made)
    if rank == 0:
        print(f"{name} on {dist.get_world_size()} processes")
        print(f"{'step':>4}  {'loss':>12}  {'reference':>12}  {'difference':>10}")
        for step, (a, b) in enumerate(zip(losses, reference)):
            print(f"{step:>4}  {a:>12.8f}  {b:>12.8f}  {abs(a - b):>10.2e}")
        print(f"largest difference, any step of any rank: {diff:.2e}")
        for setup, counts in spans.items():
            calls = f"{_span(counts['new_group'])} new_group"
            if counts["split_group"] != (0, 0):
                calls += f" + {_span(counts['split_group'])} split_group"
            print(f"communicators per rank, {setup}: {_span(counts['communicators'])} ({calls} calls)")
        for key, value in extra.items():
            print(f"{key}: {value}")
        sys.stdout.flush()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": rank,
            "losses": list(losses),
            "reference": list(reference),
            "made": {
                setup: {key: getattr(counts, key) for key in ("communicators", "new_group", "split_group")}
                for setup, counts in made.items()
            },
            **extra,
        }
        (out / f"rank{rank}.json").write_text(json.dumps(record))
    return diff


def mean_over(value: torch.Tensor, group: Any) -> float:
    """The mean of a scalar over a process group (each data-parallel rank's loss of its share)."""
    import torch.distributed as dist

    total = value.detach().clone()
    dist.all_reduce(total, group=group)
    return float(total.item()) / dist.get_world_size(group)


def init_gloo() -> None:
    """Join the job torchrun started (gloo: CPU processes)."""
    import torch.distributed as dist

    dist.init_process_group("gloo")


def init_deepspeed(*, join: bool = True) -> int:
    """Start DeepSpeed's communication on gloo without its shared-memory op; the world size.

    ``join``: first join the job torchrun started (:func:`init_gloo`); DeepSpeed then
    adopts that group.
    """
    import torch.distributed as dist

    skip_deepspeed_shm_op()
    if join:
        init_gloo()
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")  # adopts the gloo group already running
    return int(dist.get_world_size())


def skip_deepspeed_shm_op() -> None:
    """Keep DeepSpeed from JIT-compiling its shared-memory op in ``deepspeed.init_distributed``.

    On CPU, DeepSpeed's torch backend first builds a shared-memory all-reduce
    kernel with the C++ compiler (35 to 140 s on a small machine). These examples
    reduce a few hundred floats over gloo and do not need it, so the builder is
    replaced by one that reports no op. The function lives on the module object
    ``deepspeed.comm.torch`` (reached through ``sys.modules``: the attribute
    ``deepspeed.comm.torch`` is torch itself).
    """
    import deepspeed.comm  # noqa: F401  (loads deepspeed.comm.torch)

    backend: Any = sys.modules["deepspeed.comm.torch"]
    no_op: Callable[[], None] = lambda: None  # noqa: E731
    backend.build_shm_op = no_op
