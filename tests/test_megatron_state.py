"""proctopo.megatron against megatron-core 0.16: its layouts and its parallel state."""

from __future__ import annotations

import inspect
import os
import random
import subprocess
import sys
import types
from pathlib import Path

import proctopo.megatron as pm
import pytest
from helpers import RunWorkers, require
from proctopo import GridStateError, GroupNotCreatedError, InvalidArgumentError, InvalidTopologyError
from proctopo.megatron import layout
from proctopo.testing import RecordingComm

pytestmark = pytest.mark.torch  # megatron-core is the oracle of most tests here


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
        # the order string goes through the core's parser: its rules and words
        (8, {"order": "tp--pp"}, InvalidArgumentError, "order 'tp--pp' has an empty name"),
        (8, {"order": "tp-dp-tp-pp"}, InvalidArgumentError, "order 'tp-dp-tp-pp' names 'tp' twice"),
        (8, {"order": 3}, TypeError, "order must be a str, got 3"),
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


# ---------------------------------------------------------------- the parallel state, 8 ranks

#: (megatron-core's arguments, proctopo's options). Embedding functions go by name
#: (helpers.megatron_workers.EMBEDDING_FUNCTIONS).
CASES: list[tuple[dict[str, object], dict[str, object]]] = [
    (
        {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2, "expert_model_parallel_size": 2,
         "create_gloo_process_groups": False},
        {"group_creation": "local"},
    ),
    (
        {"tensor_model_parallel_size": 2, "context_parallel_size": 2, "pipeline_model_parallel_size": 2,
         "create_gloo_process_groups": True},
        {"group_creation": "local"},
    ),
    (
        {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2, "expert_model_parallel_size": 2,
         "expert_tensor_parallel_size": 1, "order": "tp-cp-ep-dp-pp", "create_gloo_process_groups": False},
        {"group_creation": "global"},
    ),
    (
        {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 4, "order": "tp-pp-dp",
         "virtual_pipeline_model_parallel_size": 2, "get_embedding_ranks": "last_stage_only",
         "get_position_embedding_ranks": "first_two_stages", "create_gloo_process_groups": False},
        {"group_creation": "local"},
    ),
    (
        {"context_parallel_size": 4, "expert_model_parallel_size": 4, "expert_tensor_parallel_size": 1,
         "create_gloo_process_groups": False},
        {"group_creation": "auto"},
    ),
]  # fmt: skip


def _whole_world(world: int) -> tuple[str, list[int], str]:
    return ("group", list(range(world)), "gloo")


@pytest.mark.mp
def test_parallel_state_equals_megatron_core(run_workers: RunWorkers) -> None:
    """On 8 gloo ranks: every getter, global and collection field as after megatron-core's own call."""
    _megatron()
    _megatron("megatron.core.process_groups_config")
    from helpers import megatron_workers

    world = 8
    results = run_workers(megatron_workers.compare, world, (CASES,), timeout=280)
    figures = []
    for case, (config, options) in enumerate(CASES):
        calls_m = calls_p = live_m = live_p = 0
        for rank in range(world):
            m, p = results[rank][case]["megatron"], results[rank][case]["proctopo"]
            where = f"case {case} {config} {options}, rank {rank}"
            rm, rp = m["record"], p["record"]
            for name, answer in rm["getters"].items():
                assert rp["getters"][name] == answer, f"{where}: {name}"
            assert rp["globals"] == rm["globals"], where
            assert rp["collection"] == rm["collection"], where
            # megatron-core lists its groups of this rank for update_pg_timeout; proctopo lists the
            # same rank sets, except the group of every rank, which is the default group (None) here.
            assert rp["group_list"] == sorted(
                [g for g in rm["group_list"] if g != _whole_world(world)], key=repr
            ), where
            # Teardown: megatron-core's reset, every group proctopo made freed, a second call a no-op.
            assert p["after_destroy"] == m["after_destroy"], where
            assert p["after_destroy_again"] == p["after_destroy"], where
            assert p["live_after_destroy"] == p["counts"]["live_before"], where
            assert p["live_after_second_destroy"] == p["live_after_destroy"], where
            # Every distinct group of proctopo's answered an all_reduce with the right sum.
            distinct = {tuple(g[1]) for g in rp["group_list"] if g is not None}
            assert {tuple(g) for g in p["proved"]} >= distinct, where
            # Fewer or as many calls and live communicators as megatron-core.
            made_m = m["counts"]["live_after"] - m["counts"]["live_before"]
            made_p = p["counts"]["live_after"] - p["counts"]["live_before"]
            assert made_p <= made_m, where
            assert p["counts"]["new_group"] <= m["counts"]["new_group"], where
            calls_m = max(calls_m, m["counts"]["new_group"])
            calls_p = max(calls_p, p["counts"]["new_group"])
            live_m, live_p = max(live_m, made_m), max(live_p, made_p)
        figures.append((case, calls_m, calls_p, live_m, live_p))
    for case, calls_m, calls_p, live_m, live_p in figures:  # shown with -s
        print(
            f"case {case}: new_group calls per rank (max) megatron-core {calls_m}, proctopo {calls_p}; "
            f"communicators alive per rank (max) megatron-core {live_m}, proctopo {live_p}"
        )
    # The sharing shows: over these cases proctopo leaves strictly fewer communicators alive.
    assert sum(f[4] for f in figures) < sum(f[3] for f in figures), figures


# ------------------------------------------------------------------ one process, no groups


def test_import_needs_neither_megatron_nor_torch() -> None:
    code = (
        "import sys, proctopo.megatron as m; m.layout(8, tensor_model_parallel_size=2); "
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('megatron', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_signature_is_megatron_cores() -> None:
    """Same parameters, order and defaults as megatron-core's, then proctopo's keyword-only options."""
    ps = _megatron()
    theirs = inspect.signature(ps.initialize_model_parallel).parameters
    ours = inspect.signature(pm.initialize_model_parallel).parameters
    assert [(p.name, p.default, p.kind) for p in list(ours.values())[: len(theirs)]] == [
        (p.name, p.default, p.kind) for p in theirs.values()
    ]
    extra = list(ours.values())[len(theirs) :]
    assert [(p.name, p.kind) for p in extra] == [
        ("group_creation", inspect.Parameter.KEYWORD_ONLY),
        ("timeout", inspect.Parameter.KEYWORD_ONLY),
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pipeline_model_parallel_comm_backend", "ucc"),
        ("use_sharp", True),
        ("hierarchical_context_parallel_sizes", [2, 2]),
        ("hybrid_context_parallel", True),
        ("num_distributed_optimizer_instances", 2),
        ("nccl_communicator_config_path", "nccl.yaml"),
        ("high_priority_stream_groups", ["dp"]),
        ("sharp_enabled_group", "dp"),
        ("create_all_gather_group", True),
    ],
)
def test_unsupported_option_is_refused_by_name(name: str, value: object) -> None:
    # Refused before anything else happens: no torch.distributed, no megatron-core needed.
    with pytest.raises(InvalidArgumentError) as info:
        pm.initialize_model_parallel(**{name: value})  # type: ignore[arg-type]
    assert f"does not support {name}={value!r}" in str(info.value)


def test_virtual_pipeline_needs_pipeline_parallelism() -> None:
    with pytest.raises(InvalidArgumentError, match="needs pipeline_model_parallel_size > 1, got 1"):
        pm.initialize_model_parallel(virtual_pipeline_model_parallel_size=2)


def test_already_initialised_state_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    ps = _megatron()
    monkeypatch.setattr(ps, "_DATA_PARALLEL_GROUP", object())
    with pytest.raises(GridStateError, match="already initialised; call destroy_model_parallel"):
        pm.initialize_model_parallel()


def test_process_groups_before_initialisation() -> None:
    _megatron("megatron.core.process_groups_config")
    with pytest.raises(GridStateError, match=r"call proctopo\.megatron\.initialize_model_parallel"):
        pm.process_groups()


def test_missing_megatron_core_is_named_with_its_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "megatron.core.parallel_state", None)  # import fails
    for call in (pm.initialize_model_parallel, pm.destroy_model_parallel, pm.process_groups):
        with pytest.raises(ImportError, match="needs megatron-core: pip install megatron-core"):
            call()


@pytest.mark.parametrize("strategy", ["local", "global"])
def test_create_groups_on_the_recorder_matches_megatron_cores_lists(strategy: str) -> None:
    """Every rank of a 64-rank world, played in turn: its groups are megatron-core's lists."""
    ps = _megatron()
    world = 64
    kw: dict[str, object] = {
        "tensor_model_parallel_size": 2,
        "context_parallel_size": 2,
        "pipeline_model_parallel_size": 4,
        "expert_model_parallel_size": 4,
        "expert_tensor_parallel_size": 1,
    }
    dense, expert = _megatron_generators(ps, world, {**kw, "order": "tp-cp-ep-dp-pp"})
    tokens = {
        "dp_cp": (dense, "dp-cp"), "dp": (dense, "dp"), "cp": (dense, "cp"), "mp": (dense, "tp-pp"),
        "tp": (dense, "tp"), "pp": (dense, "pp"), "tp_dp_cp": (dense, "tp-dp-cp"),
        "tp_dp": (dense, "tp-dp"), "tp_cp": (dense, "tp-cp"), "ep": (expert, "ep"),
        "expt_tp": (expert, "tp"), "tp_ep": (expert, "tp-ep"), "tp_ep_pp": (expert, "tp-ep-pp"),
        "expt_dp": (expert, "dp"),
    }  # fmt: skip
    for rank in range(world):
        comm = RecordingComm(rank, world)
        mg = pm.create_groups(**kw, create_gloo_process_groups=False, group_creation=strategy, comm=comm)  # type: ignore[arg-type]
        for kind, (gen, token) in tokens.items():
            want = next(g for g in gen.get_ranks(token) if rank in g)  # type: ignore[attr-defined]
            handle = mg.handles[kind]
            got = list(range(world)) if handle is comm.parent() else list(handle.ranks)
            assert got == want, (rank, kind)
        assert mg.handles["intra_dist_opt"] is comm.parent()  # every rank: the default group itself
        pp = next(g for g in dense.get_ranks("pp") if rank in g)  # type: ignore[attr-defined]
        ends = [pp[0], pp[-1]]
        assert mg.ranks["pp"] == pp and mg.ranks["embd"] == (ends if rank in ends else None)
        assert mg.ranks["pos_embd"] == ([pp[0]] if rank == pp[0] else None)
        assert (mg.handles["embd"] is None) == (mg.ranks["embd"] is None)
        # Each distinct rank set once: no two live groups of this rank hold the same ranks.
        live = [tuple(g.ranks) for g in comm.groups if g.alive and g.kind != "pad"]
        assert len(live) == len(set(live)) == mg.grid.communicators, rank


def test_groups_after_the_grid_are_explicit_checked_creations() -> None:
    """The gloo twins and the embedding families come from create_group / new_groups, each checked."""
    for gloo, checks in ((False, 1 + 2), (True, 1 + 3 + 2)):  # construction, gloo twins, embedding
        comm = RecordingComm(5, 16, backend="nccl")
        mg = pm.create_groups(
            tensor_model_parallel_size=2,
            pipeline_model_parallel_size=2,
            create_gloo_process_groups=gloo,
            group_creation="local",
            comm=comm,
        )
        assert comm.calls["collective"] == checks
        if gloo:
            assert mg.handles["dp_gloo"].backend == "gloo"
            assert mg.grid.get_group(("dp",), backend="gloo") is mg.handles["dp_gloo"]
        else:
            with pytest.raises(GroupNotCreatedError, match="backend='gloo'"):
                mg.grid.get_group(("dp",), backend="gloo")


def test_overlapping_embedding_lists_are_refused() -> None:
    """megatron-core would make overlapping groups; the grid's families are disjoint, and say so."""

    def with_rank_zero(pp_ranks: list[int]) -> list[int]:
        return sorted({0, pp_ranks[-1]})

    with pytest.raises(InvalidArgumentError, match="the groups must be disjoint"):
        pm.create_groups(
            pipeline_model_parallel_size=2,
            get_embedding_ranks=with_rank_zero,
            create_gloo_process_groups=False,
            comm=RecordingComm(0, 8),
        )


def _doc_example() -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    section = text[text.index("## Megatron") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


@pytest.mark.slow
def test_the_megatron_example_of_the_docs_runs_under_torchrun(tmp_path: Path, torch_dist: object) -> None:
    _megatron()
    script = tmp_path / "megatron_example.py"
    script.write_text(_doc_example())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", str(script)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "rank 0: tp rank 0, pp stage 0, dp group [0], ep group [0, 1]" in done.stdout, done.stdout
