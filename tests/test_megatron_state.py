"""proctopo.megatron against megatron-core (0.16.x or 0.19.x, whichever is installed): its
layouts, its parallel state, and the refusal of releases and states it does not know."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import random
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import proctopo.megatron as pm
import pytest
from helpers import RunWorkers, require
from proctopo import GridStateError, GroupNotCreatedError, InvalidArgumentError, InvalidTopologyError
from proctopo.errors import UnsupportedPeerError
from proctopo.megatron import layout
from proctopo.testing import RecordingComm

pytestmark = pytest.mark.torch  # megatron-core is the oracle of most tests here


def _megatron(module: str = "megatron.core.parallel_state") -> types.ModuleType:
    return require(module)  # its import-time warnings are filtered in pyproject.toml


def _release() -> str:
    """The installed megatron-core's release series ("0.16" or "0.19")."""
    ps = _megatron()
    # package_info appends the git commit when megatron-core sits in a git checkout.
    version = sys.modules["megatron.core.package_info"].__version__.split("+")[0]
    assert ps is not None and version in pm.TESTED_VERSIONS.values(), version
    return str(version.rsplit(".", 1)[0])


SIZE_KEYS = ("tensor_model_parallel_size", "context_parallel_size", "expert_model_parallel_size")
GTP_KEYS = ("gtp_remat_size", "expert_gtp_remat_size")


def _megatron_generators(ps: types.ModuleType, world: int, kw: dict[str, object]) -> tuple[object, object]:
    """megatron-core's two RankGenerators and its checks, as its initialize_model_parallel runs them."""
    tp, cp, ep, pp = (int(kw[k]) for k in (*SIZE_KEYS, "pipeline_model_parallel_size"))  # type: ignore[call-overload]
    gtp, egtp = (int(kw.get(k, 1)) for k in GTP_KEYS)  # type: ignore[call-overload]
    etp = kw["expert_tensor_parallel_size"]
    etp = tp if etp is None else int(etp)  # type: ignore[call-overload]
    order = str(kw["order"])
    if world % (tp * gtp * cp * pp) or world % (etp * ep * egtp * pp):
        raise RuntimeError("not divisible")
    dp, edp = world // (tp * gtp * cp * pp), world // (etp * ep * egtp * pp)
    if hasattr(ps, "_inject_gtp_remat_axis"):  # megatron-core 0.19
        # Its RankGenerator looks for a missing token by substring, and "tp" is in "gtp_remat":
        # it never appends a missing tp, and then fails on its first group over tp (ValueError,
        # some groups already made). proctopo refuses such an order when tp is above 1 and
        # completes it when tp is 1, as megatron-core 0.16 does (see the test below).
        if "tp" not in order.lower().split("-"):
            raise LookupError("tp left out of the order")
        dense = ps.RankGenerator(
            tp=tp,
            ep=1,
            dp=dp,
            pp=pp,
            cp=cp,
            order=ps._inject_gtp_remat_axis(order, after="tp"),
            gtp_remat=gtp,
        )
        expert = ps.RankGenerator(
            tp=etp,
            ep=ep,
            dp=edp,
            pp=pp,
            cp=1,
            order=ps._inject_gtp_remat_axis(order, after="ep"),
            gtp_remat=egtp,
        )
    else:
        assert gtp == egtp == 1
        dense = ps.RankGenerator(tp=tp, ep=1, dp=dp, pp=pp, cp=cp, order=order)
        expert = ps.RankGenerator(tp=etp, ep=ep, dp=edp, pp=pp, cp=1, order=order)
    assert order.endswith("pp") or pp == 1 or edp == dp
    assert dense.get_ranks("pp") == expert.get_ranks("pp")
    return dense, expert


#: megatron-core's tokens of its groups -> proctopo's axes, per layout.
DENSE_AXES = {"tp": "tp", "cp": "cp", "dp": "dp", "pp": "pp", "gtp_remat": "gtp"}
EXPERT_AXES = {"tp": "etp", "ep": "ep", "dp": "edp", "pp": "pp", "gtp_remat": "egtp"}
DENSE_TOKENS = ["dp-cp", "dp", "cp", "tp-pp", "tp", "pp", "tp-dp-cp", "tp-dp", "tp-cp"]
EXPERT_TOKENS = ["ep", "tp", "tp-ep", "tp-ep-pp", "dp"]
GTP_DENSE_TOKENS = [
    "gtp_remat", "gtp_remat-dp", "gtp_remat-dp-cp", "tp-gtp_remat-pp", "tp-gtp_remat-dp-cp", "tp-gtp_remat-dp"
]  # fmt: skip
GTP_EXPERT_TOKENS = ["gtp_remat", "tp-ep-gtp_remat-pp", "gtp_remat-dp"]


def _groups(topo: pm.ProcessTopology, token: str, names: dict[str, str]) -> list[list[int]]:
    axes = [names[t] for t in token.split("-") if names[t] in topo.axes]
    if not axes:  # an axis the layout leaves out (size 1): each rank alone
        return [[r] for r in range(topo.world_size())]
    return topo.groups(axes).tolist()  # type: ignore[no-any-return]


def _significant(order: str, gen: object) -> list[str]:
    """The tokens of an order whose size is above 1 (those that place ranks), in order."""
    return [t for t in order.split("-") if gen.name_to_size.get(t, 1) > 1]  # type: ignore[attr-defined]


def _outcome(world: int, kw: dict[str, object]) -> object:
    """Refused, or every group of both layouts."""
    try:
        lay = layout(world, **kw)  # type: ignore[arg-type]
    except InvalidArgumentError:
        return "refused"
    return [_groups(lay.dense, t, DENSE_AXES) for t in DENSE_TOKENS + GTP_DENSE_TOKENS] + [
        _groups(lay.expert, t, EXPERT_AXES) for t in EXPERT_TOKENS + GTP_EXPERT_TOKENS
    ]


def test_layout_matches_megatron_rank_generators() -> None:
    """Random sizes and orders: proctopo accepts what megatron-core accepts, with the same groups."""
    ps = _megatron()
    gtp_release = _release() == "0.19"
    rng = random.Random(11)
    accepted = refused = with_gtp = 0
    for _ in range(1500):
        kw: dict[str, object] = {k: rng.choice([1, 2, 3]) for k in SIZE_KEYS}
        kw["pipeline_model_parallel_size"] = rng.choice([1, 2, 3])
        kw["expert_tensor_parallel_size"] = rng.choice([None, 1, 2, 3])
        tokens = ["tp", "cp", "ep", "dp", "pp"]
        if gtp_release:
            kw.update({k: rng.choice([1, 1, 2]) for k in GTP_KEYS})
            if rng.random() < 0.2:
                tokens.append("gtp_remat")
        rng.shuffle(tokens)
        kw["order"] = "-".join(tokens[: rng.choice([3, 4, 5, len(tokens)])])
        world = rng.choice([1, 2, 3, 4])
        for k in ("tensor_model_parallel_size", "context_parallel_size", "pipeline_model_parallel_size"):
            world *= int(kw[k])  # type: ignore[call-overload]
        world *= int(kw.get("gtp_remat_size", 1))  # type: ignore[call-overload]
        try:
            dense, expert = _megatron_generators(ps, world, kw)
        except LookupError:  # megatron-core 0.19 and an order without tp: no oracle
            tp_sizes = (kw["tensor_model_parallel_size"], kw["expert_tensor_parallel_size"])
            if max(int(v) for v in tp_sizes if v is not None) > 1:  # type: ignore[call-overload]
                with pytest.raises(InvalidArgumentError):
                    layout(world, **kw)  # type: ignore[arg-type]
            else:  # the same groups as with tp (of size 1) written first, where gtp_remat then goes
                assert _outcome(world, kw) == _outcome(world, {**kw, "order": f"tp-{kw['order']}"}), kw
            continue
        except (RuntimeError, AssertionError):
            with pytest.raises(InvalidArgumentError):
                layout(world, **kw)  # type: ignore[arg-type]
            refused += 1
            continue
        lay = layout(world, **kw)  # type: ignore[arg-type]
        accepted += 1
        with_gtp += lay.gtp > 1 or lay.egtp > 1
        if gtp_release:  # 0.19 always places gtp_remat, which only matters when its size is above 1
            assert _significant(lay.order, dense) == _significant(dense.order, dense), kw  # type: ignore[attr-defined]
            assert _significant(lay.expert_order, expert) == _significant(expert.order, expert), kw  # type: ignore[attr-defined]
        else:
            assert lay.order == lay.expert_order == dense.order  # type: ignore[attr-defined]
        dense_tokens = DENSE_TOKENS + (GTP_DENSE_TOKENS if gtp_release else [])
        expert_tokens = EXPERT_TOKENS + (GTP_EXPERT_TOKENS if gtp_release else [])
        for token in dense_tokens:
            assert _groups(lay.dense, token, DENSE_AXES) == dense.get_ranks(token), (kw, token)  # type: ignore[attr-defined]
        for token in expert_tokens:
            assert _groups(lay.expert, token, EXPERT_AXES) == expert.get_ranks(token), (kw, token)  # type: ignore[attr-defined]
    assert accepted > 200 and refused > 200  # both branches were exercised
    assert with_gtp > (100 if gtp_release else -1), with_gtp  # and GTP where megatron-core has it


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


#: megatron-core 0.19's GTP weight rematerialisation (dense, expert, both, and gtp_remat named
#: in the order), with the gloo groups it leaves out; run where 0.19 is installed.
GTP_CASES: list[tuple[dict[str, object], dict[str, object]]] = [
    (
        {"tensor_model_parallel_size": 2, "gtp_remat_size": 2, "pipeline_model_parallel_size": 2,
         "expert_model_parallel_size": 2, "expert_tensor_parallel_size": 1, "expert_gtp_remat_size": 2,
         "create_gloo_process_groups": True},
        {"group_creation": "local"},
    ),
    (
        {"gtp_remat_size": 2, "context_parallel_size": 2, "expert_model_parallel_size": 4,
         "expert_tensor_parallel_size": 1, "create_gloo_process_groups": True},
        {"group_creation": "global"},
    ),
    (
        {"tensor_model_parallel_size": 2, "expert_model_parallel_size": 2, "expert_tensor_parallel_size": 1,
         "expert_gtp_remat_size": 2, "create_gloo_process_groups": True},
        {"group_creation": "auto"},
    ),
    (
        {"tensor_model_parallel_size": 2, "gtp_remat_size": 2, "pipeline_model_parallel_size": 2,
         "expert_gtp_remat_size": 2, "order": "gtp_remat-tp-dp-pp", "create_gloo_process_groups": False},
        {"group_creation": "local"},
    ),
]  # fmt: skip


def _whole_world(world: int) -> tuple[str, list[int], str]:
    return ("group", list(range(world)), "gloo")


def _assert_same_state(
    results: list[Any], cases: list[Any], world: int
) -> list[tuple[int, int, int, int, int]]:
    """Each case's state on every rank equals megatron-core's; (case, calls and live groups of each side)."""
    from helpers import megatron_workers

    figures = []
    for case, (config, options) in enumerate(cases):
        calls_m = calls_p = live_m = live_p = 0
        for rank in range(world):
            m, p = results[rank][case]["megatron"], results[rank][case]["proctopo"]
            where = f"case {case} {config} {options}, rank {rank}"
            rm, rp = m["record"], p["record"]
            for name, answer in rm["getters"].items():
                assert rp["getters"][name] == answer, f"{where}: {name}"
            # The getters of the installed release answer (or raise megatron-core's own error).
            absent = sorted(n.split("(")[0] for n, a in rm["getters"].items() if a == ("absent",))
            assert absent == sorted(megatron_workers.ABSENT[_release()]), where
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
    return figures


@pytest.mark.mp
def test_parallel_state_equals_megatron_core(run_workers: RunWorkers) -> None:
    """On 8 gloo ranks: every getter, global and collection field as after megatron-core's own call."""
    _megatron()
    _megatron("megatron.core.process_groups_config")
    from helpers import megatron_workers

    world = 8
    cases = CASES + (GTP_CASES if _release() == "0.19" else [])
    results = run_workers(megatron_workers.compare, world, (cases,), timeout=280)
    figures = _assert_same_state(results, cases, world)
    for case, calls_m, calls_p, live_m, live_p in figures:  # shown with -s
        print(
            f"case {case}: new_group calls per rank (max) megatron-core {calls_m}, proctopo {calls_p}; "
            f"communicators alive per rank (max) megatron-core {live_m}, proctopo {live_p}"
        )
    # The sharing shows: over these cases proctopo leaves strictly fewer communicators alive.
    assert sum(f[4] for f in figures) < sum(f[3] for f in figures), figures


#: Worlds too small for every axis: a single rank, and two pipeline stages whose embedding group
#: (first and last stage) is every rank, which the grid serves with the default group itself.
SMALL_CASES: list[tuple[int, list[tuple[dict[str, object], dict[str, object]]]]] = [
    (1, [({"create_gloo_process_groups": True}, {"group_creation": "local"})]),
    (2, [({"pipeline_model_parallel_size": 2, "create_gloo_process_groups": True},
          {"group_creation": "local"}),
         ({"pipeline_model_parallel_size": 2, "create_gloo_process_groups": False},
          {"group_creation": "global"})]),
]  # fmt: skip


@pytest.mark.mp
@pytest.mark.parametrize(("world", "cases"), SMALL_CASES, ids=[f"{w}-ranks" for w, _ in SMALL_CASES])
def test_parallel_state_on_small_worlds_equals_megatron_core(
    run_workers: RunWorkers, world: int, cases: list[Any]
) -> None:
    _megatron()
    _megatron("megatron.core.process_groups_config")
    from helpers import megatron_workers

    results = run_workers(megatron_workers.compare, world, (cases,), timeout=200)
    figures = _assert_same_state(results, cases, world)
    assert len(figures) == len(cases)


# ------------------------------------------------------------------ one process, no groups


def test_import_needs_neither_megatron_nor_torch() -> None:
    code = (
        "import sys, proctopo.megatron as m; m.layout(8, tensor_model_parallel_size=2); "
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('megatron', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


#: initialize_model_parallel's parameters that only one tested release has.
ONLY_IN = {
    "0.16": ["create_all_gather_group"],
    "0.19": ["gtp_remat_size", "expert_gtp_remat_size", "rank_offset", "local_world_size"],
}


def test_signature_is_megatron_cores() -> None:
    """megatron-core's parameters and defaults; by position as far as every tested release agrees."""
    ps = _megatron()
    theirs = list(inspect.signature(ps.initialize_model_parallel).parameters.values())
    ours = list(inspect.signature(pm.initialize_model_parallel).parameters.values())
    positional = [p for p in ours if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    # The positional prefix is megatron-core's own, in this release (and, the test run in the
    # other venv shows, in the other one).
    assert [(p.name, p.default, p.kind) for p in positional] == [
        (p.name, p.default, p.kind) for p in theirs[: len(positional)]
    ]
    assert theirs[len(positional)].name == {"0.16": "num_distributed_optimizer_instances",
                                            "0.19": "gtp_remat_size"}[_release()]  # fmt: skip
    # Every other parameter of megatron-core's is ours too, by name, with its default.
    by_name = {p.name: p for p in ours}
    for p in theirs[len(positional) :]:
        assert by_name[p.name].default == p.default, p.name
        assert by_name[p.name].kind is inspect.Parameter.KEYWORD_ONLY, p.name
    # Ours beyond them: the other release's, then proctopo's own five.
    extra = [p.name for p in ours if p.name not in {t.name for t in theirs}]
    other = next(r for r in pm.TESTED_VERSIONS if r != _release())
    assert extra == [*ONLY_IN[other], "group_creation", "timeout", "intra_node", "intra_domain", "reorder"]


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
        ("rank_offset", 4),
        ("local_world_size", 4),
    ],
)
def test_unsupported_option_is_refused_by_name(name: str, value: object) -> None:
    # Refused before anything else happens: no torch.distributed, no megatron-core needed.
    with pytest.raises(InvalidArgumentError) as info:
        pm.initialize_model_parallel(**{name: value})  # type: ignore[arg-type]
    assert f"does not support {name}={value!r}" in str(info.value)


def test_arguments_past_the_ninth_are_keyword_only() -> None:
    """0.19 moved them: the tenth is num_distributed_optimizer_instances in 0.16, gtp_remat_size in 0.19."""
    with pytest.raises(TypeError, match="positional"):
        pm.initialize_model_parallel(1, 1, None, None, False, 1, None, False, 1, 1)  # type: ignore[misc]


# ---------------------------------------------------- releases and states proctopo does not know


CREATE_GROUPS = pm.create_groups


def _snapshot(ps: types.ModuleType) -> dict[str, object]:
    return {k: v for k, v in vars(ps).items() if k.startswith("_") and k[1:2].isupper()}


@pytest.fixture
def untouched(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """megatron-core's parallel_state, checked unchanged afterwards, with group creation forbidden."""
    ps = _megatron()

    def no_groups(**kwargs: object) -> None:
        raise AssertionError("create_groups was reached")

    monkeypatch.setattr(pm, "create_groups", no_groups)
    before = _snapshot(ps)
    yield ps
    after = _snapshot(ps)  # (a test may have deleted some, to see them refused)
    assert after.keys() <= before.keys() and all(after[k] is before[k] for k in after)


def test_installed_version_is_megatron_cores() -> None:
    _megatron()
    version = pm.installed_version()
    assert version == sys.modules["megatron.core.package_info"].__version__
    # package_info appends the git commit when megatron-core sits in a git checkout (a venv
    # inside this repository); the distribution's metadata does not.
    assert version.split("+")[0] == importlib.metadata.version("megatron-core")  # type: ignore[union-attr]
    assert version.split("+")[0] in pm.TESTED_VERSIONS.values()  # type: ignore[union-attr]


#: The end of every refusal of megatron-core (the tested releases and how to get one).
TESTED_TAIL = (
    "proctopo.megatron was tested with megatron-core 0.16.1 and 0.19.2 (any 0.16.x or 0.19.x is taken); "
    "install one of them (pip install 'megatron-core==0.16.1'; or pip install 'megatron-core==0.19.2', "
    "on Python 3.12 or newer), or call megatron.core.parallel_state.initialize_model_parallel itself. "
    "Each release moves globals of megatron.core.parallel_state that proctopo.megatron fills, and it "
    "fills none it does not know."
)


@pytest.mark.parametrize(
    "version", ["0.15.3", "0.17.0", "0.18.1", "0.20.0", "1.16.1", "0.19.0rc1", "0.19", "0.16.1.post1", None]
)
def test_an_untested_release_is_refused_before_anything(
    version: str | None, monkeypatch: pytest.MonkeyPatch, untouched: types.ModuleType
) -> None:
    monkeypatch.setattr(pm, "installed_version", lambda: version)
    with pytest.raises(UnsupportedPeerError) as info:
        pm.initialize_model_parallel(tensor_model_parallel_size=2)
    assert isinstance(info.value, ImportError)  # except ImportError keeps catching it
    shown = version or "of unknown version (no package metadata, no megatron.core.package_info)"
    assert str(info.value) == f"megatron-core {shown} is not supported: {TESTED_TAIL}"
    if version is not None:
        # create_groups, which needs no megatron-core, asks the same when no release is given.
        with pytest.raises(UnsupportedPeerError) as again:
            CREATE_GROUPS(comm=RecordingComm(0, 8))
        assert str(again.value) == str(info.value)


@pytest.mark.parametrize(
    "version", ["0.16.0", "0.16.1", "0.16.7", "0.19.0", "0.19.2", "0.19.9", "0.19.2+6304342", "0.16.1+a1b.2"]
)
def test_a_patch_release_of_a_tested_series_is_taken(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pm, "installed_version", lambda: version)
    mg = pm.create_groups(comm=RecordingComm(0, 8), create_gloo_process_groups=False)
    assert mg.release == version.split("+")[0].rsplit(".", 1)[0]
    assert ("gtp_remat" in mg.handles) == (mg.release == "0.19")


def test_the_other_tested_release_is_refused_by_the_globals_it_lacks(
    monkeypatch: pytest.MonkeyPatch, untouched: types.ModuleType
) -> None:
    """Claiming the other tested release: its parallel_state globals are missing, and named."""
    other = next(v for r, v in pm.TESTED_VERSIONS.items() if r != _release())
    monkeypatch.setattr(pm, "installed_version", lambda: other)
    with pytest.raises(UnsupportedPeerError) as info:
        pm.initialize_model_parallel()
    missing = {"0.16.1": "_DATA_PARALLEL_GROUP_WITH_CP_AG",
               "0.19.2": "_GTP_WEIGHT_REMAT_GROUP, _GTP_WEIGHT_REMAT_GLOBAL_RANKS"}[other]  # fmt: skip
    assert str(info.value).startswith(
        f"megatron-core {other} is not supported: its megatron.core.parallel_state has no {missing}"
    )
    assert str(info.value).endswith(TESTED_TAIL)


@pytest.mark.parametrize(
    "names", [["_EXPERT_DATA_PARALLEL_GROUP"], ["_PIPELINE_GLOBAL_RANKS", "_global_process_group_list"]]
)
def test_a_missing_global_is_refused_by_name(
    names: list[str], monkeypatch: pytest.MonkeyPatch, untouched: types.ModuleType
) -> None:
    for name in names:
        monkeypatch.delattr(untouched, name)
    with pytest.raises(UnsupportedPeerError) as info:
        pm.initialize_model_parallel()
    version = pm.installed_version()
    assert str(info.value) == (
        f"megatron-core {version} is not supported: its megatron.core.parallel_state has no "
        f"{', '.join(names)} (megatron-core {pm.TESTED_VERSIONS[_release()]}'s has them, and "
        f"proctopo.megatron sets or calls them); {TESTED_TAIL}"
    )


def test_an_unknown_collection_field_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    config = _megatron("megatron.core.process_groups_config")
    names = [f.name for f in dataclasses.fields(config.ProcessGroupCollection)]
    fields = [(n, object, dataclasses.field(default=None)) for n in [*names, "zz_new"]]
    changed = dataclasses.make_dataclass("ProcessGroupCollection", fields)  # a release with one more field
    monkeypatch.setattr(config, "ProcessGroupCollection", changed)
    monkeypatch.setattr(pm, "_STATE", object())  # as after initialize_model_parallel
    with pytest.raises(UnsupportedPeerError) as info:
        pm.process_groups()
    assert str(info.value) == (
        f"megatron-core {pm.installed_version()} is not supported: its ProcessGroupCollection has the "
        f"field(s) zz_new, which proctopo.megatron does not know how to fill; {TESTED_TAIL}"
    )


def test_gtp_needs_megatron_core_019() -> None:
    for kwargs in ({"gtp_remat_size": 2}, {"expert_gtp_remat_size": 2}, {"order": "tp-gtp_remat-dp-pp"}):
        with pytest.raises(
            InvalidArgumentError, match=r"comes with megatron-core 0\.19; megatron-core 0\.16 has"
        ):
            pm.create_groups(**kwargs, comm=RecordingComm(0, 8), release="0.16")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"release must be one of '0\.16', '0\.19'.*got '0\.17'"):
        pm.create_groups(comm=RecordingComm(0, 8), release="0.17")


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
    if _release() == "0.19":
        kw.update(gtp_remat_size=2, expert_gtp_remat_size=2)
    dense, expert = _megatron_generators(ps, world, {**kw, "order": "tp-cp-ep-dp-pp"})
    tokens = {
        "dp_cp": (dense, "dp-cp"), "dp": (dense, "dp"), "cp": (dense, "cp"), "mp": (dense, "tp-pp"),
        "tp": (dense, "tp"), "pp": (dense, "pp"), "tp_dp_cp": (dense, "tp-dp-cp"),
        "tp_dp": (dense, "tp-dp"), "tp_cp": (dense, "tp-cp"), "ep": (expert, "ep"),
        "expt_tp": (expert, "tp"), "tp_ep": (expert, "tp-ep"), "tp_ep_pp": (expert, "tp-ep-pp"),
        "expt_dp": (expert, "dp"),
    }  # fmt: skip
    if _release() == "0.19":  # the GTP groups, and the kinds that span GTP
        tokens.update({
            "mp": (dense, "tp-gtp_remat-pp"), "tp_dp_cp": (dense, "tp-gtp_remat-dp-cp"),
            "tp_dp": (dense, "tp-gtp_remat-dp"), "gtp_remat": (dense, "gtp_remat"),
            "dp_gtp_remat": (dense, "gtp_remat-dp"), "dp_cp_gtp_remat": (dense, "gtp_remat-dp-cp"),
            "expt_gtp_remat": (expert, "gtp_remat"), "expt_dp_gtp_remat": (expert, "gtp_remat-dp"),
            "tp_ep_pp_with_egtp_remat": (expert, "tp-ep-gtp_remat-pp"),
        })  # fmt: skip
    for rank in range(world):
        comm = RecordingComm(rank, world)
        mg = pm.create_groups(**kw, create_gloo_process_groups=False, group_creation=strategy, comm=comm)  # type: ignore[arg-type]
        for kind, (gen, token) in tokens.items():
            want = next(g for g in gen.get_ranks(token) if rank in g)  # type: ignore[attr-defined]
            handle = mg.handles[kind]
            got = list(range(world)) if handle is comm.parent() else list(handle.ranks)
            assert got == want, (rank, kind)
        assert mg.handles.keys() == {*tokens, "intra_dist_opt", "embd", "pos_embd"}
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
