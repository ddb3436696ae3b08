"""proctopo.megatron against megatron-core 0.16: its layouts and its parallel state."""

from __future__ import annotations

import random
import types

import pytest
from helpers import require
from proctopo import InvalidArgumentError, InvalidTopologyError
from proctopo.megatron import layout


def _megatron(module: str = "megatron.core.parallel_state") -> types.ModuleType:
    return require(module)  # its import-time warnings are filtered in pyproject.toml


SIZE_KEYS = ("tensor_model_parallel_size", "context_parallel_size", "expert_model_parallel_size")


def _megatron_generators(ps: types.ModuleType, world: int, kw: dict[str, object]) -> tuple[object, object]:
    """megatron-core's two RankGenerators and its checks, as its initialize_model_parallel runs them."""
    tp, cp, ep, pp = (int(kw[k]) for k in (*SIZE_KEYS, "pipeline_model_parallel_size"))  # type: ignore[call-overload]
    etp = kw["expert_tensor_parallel_size"]
    etp = tp if etp is None else int(etp)  # type: ignore[call-overload]
    order = str(kw["order"])
    if world % (tp * cp * pp) or world % (etp * ep * pp):
        raise RuntimeError("not divisible")
    dp, edp = world // (tp * cp * pp), world // (etp * ep * pp)
    dense = ps.RankGenerator(tp=tp, ep=1, dp=dp, pp=pp, cp=cp, order=order)
    expert = ps.RankGenerator(tp=etp, ep=ep, dp=edp, pp=pp, cp=1, order=order)
    assert order.endswith("pp") or pp == 1 or edp == dp
    assert dense.get_ranks("pp") == expert.get_ranks("pp")
    return dense, expert


def test_layout_matches_megatron_rank_generators() -> None:
    """Random sizes and orders: proctopo accepts what megatron-core accepts, with the same groups."""
    ps = _megatron()
    rng = random.Random(11)
    accepted = refused = 0
    for _ in range(1500):
        kw: dict[str, object] = {k: rng.choice([1, 2, 3]) for k in SIZE_KEYS}
        kw["pipeline_model_parallel_size"] = rng.choice([1, 2, 3])
        kw["expert_tensor_parallel_size"] = rng.choice([None, 1, 2, 3])
        tokens = ["tp", "cp", "ep", "dp", "pp"]
        rng.shuffle(tokens)
        kw["order"] = "-".join(tokens[: rng.choice([3, 4, 5])])
        world = (
            rng.choice([1, 2, 3, 4])
            * int(kw["tensor_model_parallel_size"])
            * int(  # type: ignore[call-overload]
                kw["context_parallel_size"]  # type: ignore[call-overload]
            )
            * int(kw["pipeline_model_parallel_size"])
        )  # type: ignore[call-overload]
        try:
            dense, expert = _megatron_generators(ps, world, kw)
        except (RuntimeError, AssertionError):
            with pytest.raises(InvalidArgumentError):
                layout(world, **kw)  # type: ignore[arg-type]
            refused += 1
            continue
        lay = layout(world, **kw)  # type: ignore[arg-type]
        accepted += 1
        assert lay.order == dense.order  # type: ignore[attr-defined]
        for token in ("dp-cp", "dp", "cp", "tp-pp", "tp", "pp", "tp-dp-cp", "tp-dp", "tp-cp"):
            assert lay.dense.groups(token.split("-")).tolist() == dense.get_ranks(token), (kw, token)  # type: ignore[attr-defined]
        for token, axes in (
            ("ep", ["ep"]),
            ("tp", ["etp"]),
            ("tp-ep", ["etp", "ep"]),
            ("tp-ep-pp", ["etp", "ep", "pp"]),
            ("dp", ["edp"]),
        ):
            assert lay.expert.groups(axes).tolist() == expert.get_ranks(token), (kw, token)  # type: ignore[attr-defined]
    assert accepted > 200 and refused > 200  # both branches were exercised


@pytest.mark.parametrize(
    ("world", "kwargs", "exc", "text"),
    [
        (8, {"order": "tp-xp-dp-pp"}, InvalidArgumentError, "names 'xp'; megatron-core's tokens are"),
        (8, {"tensor_model_parallel_size": 2, "order": "cp-dp-pp"}, InvalidArgumentError,
         "leaves out 'tp', whose size is 2"),
        (8, {"expert_tensor_parallel_size": 2, "order": "cp-dp-pp"}, InvalidArgumentError,
         "leaves out 'tp', whose expert size is 2"),
        (8, {"tensor_model_parallel_size": 3}, InvalidArgumentError,
         "cannot derive dp from world size 8 and tp=3 * cp=1 * pp=1: "),
        (8, {"expert_model_parallel_size": 3}, InvalidArgumentError,
         "cannot derive expert dp from world size 8 and etp=1 * ep=3 * pp=1: "),
        (8, {"tensor_model_parallel_size": 0}, InvalidTopologyError, "size 0"),
        (8, {"pipeline_model_parallel_size": 2, "expert_model_parallel_size": 2, "order": "tp-pp-ep-dp"},
         InvalidArgumentError, "does not end with pp, so the dense and expert layouts need the same"),
        (12, {"pipeline_model_parallel_size": 2, "context_parallel_size": 3, "expert_model_parallel_size": 3,
              "tensor_model_parallel_size": 2, "order": "cp-pp-dp-ep-tp"},
         InvalidArgumentError, "different pipeline groups (pp steps by 3 ranks in the dense layout"),
    ],
)  # fmt: skip
def test_layout_errors(world: int, kwargs: dict[str, object], exc: type[Exception], text: str) -> None:
    with pytest.raises(exc) as info:
        layout(world, **kwargs)  # type: ignore[arg-type]
    assert text in str(info.value)
