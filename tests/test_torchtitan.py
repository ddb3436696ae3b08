"""proctopo.torchtitan against torchtitan 0.3.0: the same meshes, made of one grid's groups.

The differential runs torchtitan's own ``ParallelDims.build_mesh`` and proctopo's
side by side on gloo and compares every mesh (names, mesh tensor, the ranks and
backend of each dimension's group), what the getters answer, and the process
groups each side created. The torch-free tests check the group plan against a
NumPy oracle on the recording stand-in, and the settings' rules.
"""

from __future__ import annotations

import inspect
import itertools
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import proctopo
import pytest
from helpers import RunWorkers, require
from helpers import torchtitan_workers as workers
from proctopo.testing import RecordingComm
from proctopo.torchtitan import DENSE_AXES, SPARSE_AXES, TORCHTITAN_VERSION, ParallelDims

BACKENDS = ("spmd_types", "full_dtensor", "partial_dtensor")


def _config(**sizes: int) -> dict[str, int]:
    config = {"dp_replicate": 1, "dp_shard": 1, "cp": 1, "tp": 1, "pp": 1, "ep": 1}
    config.update(sizes)
    return config


#: dp_shard only; dp_shard + tp; pipeline; context; experts inside dp_shard; experts across tp.
WORLD_4 = [
    _config(dp_shard=-1),
    _config(dp_shard=2, tp=2),
    _config(pp=2, dp_shard=2),
    _config(cp=2, dp_shard=2),
    _config(dp_shard=4, ep=2),
    _config(dp_shard=2, tp=2, ep=4),
]
#: HSDP + tp; pipeline + context; experts across dp_shard and tp; all of pp, HSDP, ep; cp + tp + ep.
WORLD_8 = [
    _config(dp_replicate=2, dp_shard=2, tp=2),
    _config(pp=2, dp_shard=2, cp=2),
    _config(dp_shard=4, tp=2, ep=4),
    _config(pp=2, dp_replicate=2, dp_shard=2, ep=2),
    _config(dp_shard=2, cp=2, tp=2, ep=2),
]


def _titan() -> types.ModuleType:
    module = require("torchtitan")
    installed = getattr(module, "__version__", "unknown")
    assert installed == TORCHTITAN_VERSION, (
        f"the differential compares with torchtitan {TORCHTITAN_VERSION}, but {installed} is installed: "
        "pip install --no-deps -r requirements/torchtitan.txt"
    )
    return require("torchtitan.distributed.parallel_dims")


def _differential(
    run_workers: RunWorkers, world: int, configs: list[dict[str, int]]
) -> list[list[dict[str, Any]]]:
    _titan()
    cases = [{**c, "spmd_backend": b} for b in BACKENDS for c in configs]
    results = run_workers(workers.differential, world, (cases,), timeout=240)
    for rank, per_case in enumerate(results):
        for res in per_case:
            where = (rank, res["config"])
            theirs, mine = res["theirs"], res["mine"]
            assert len(theirs["global"]) >= 4 and theirs["single"], where  # the oracle built its meshes
            for key in theirs:
                assert mine[key] == theirs[key], (where, key)
            counts = res["counts"]
            for what in ("calls", "real", "fake"):
                assert counts["proctopo"][what] <= counts["torchtitan"][what], (where, what, counts)
            # one communicator per distinct rank set behind the meshes: torchtitan has more
            assert res["mine_distinct"]["groups"] == res["mine_distinct"]["rank_sets"], where
            assert res["theirs_distinct"]["rank_sets"] == res["mine_distinct"]["rank_sets"], where
            # what the registry gained is what the grid says it made
            assert counts["proctopo"]["real"] + counts["proctopo"]["fake"] == res["grid_communicators"], where
    return results


def _report(results: list[list[dict[str, Any]]]) -> None:
    """The counts of rank 0, one line per config (shown with -rP or -s)."""
    for res in results[0]:
        c = res["config"]
        sizes = " ".join(f"{k}={v}" for k, v in c.items() if k != "spmd_backend" and v != 1)
        t, m = res["counts"]["torchtitan"], res["counts"]["proctopo"]
        td, md = res["theirs_distinct"], res["mine_distinct"]
        print(
            f"{c['spmd_backend']:15} {sizes:36} torchtitan calls {t['calls']:3} real {t['real']:2} "
            f"fake {t['fake']:2} mesh groups {td['groups']:2}/{td['rank_sets']} | proctopo calls "
            f"{m['calls']} real {m['real']} fake {m['fake']} mesh groups {md['groups']}/{md['rank_sets']}"
        )


def test_meshes_equal_torchtitans_on_4_ranks(run_workers: RunWorkers) -> None:
    _report(_differential(run_workers, 4, WORLD_4))


@pytest.mark.slow
def test_meshes_equal_torchtitans_on_8_ranks(run_workers: RunWorkers) -> None:
    _report(_differential(run_workers, 8, WORLD_8))


def test_fsdp_on_the_data_parallel_mesh_trains_as_one_process(run_workers: RunWorkers) -> None:
    require("torch.distributed.fsdp")
    cases = [
        {"dims": _config(dp_shard=-1), "mesh": "dp_shard"},
        {"dims": _config(dp_replicate=2, dp_shard=2), "mesh": ["dp_replicate", "dp_shard"]},  # HSDP
    ]
    results = run_workers(workers.train_fsdp, 4, (cases, 3), timeout=120)
    for rank, per_case in enumerate(results):
        for res in per_case:
            assert len(res["losses"]) == 3 and res["losses"][2] < res["losses"][0], (rank, res)
            assert res["max_diff"] <= 1e-5, (rank, res)
            assert res.get("after_destroy") == "GridDestroyedError", (rank, res)
            print(f"rank {rank} {res['case']['mesh']}: largest loss difference {res['max_diff']:.2e}")
    assert results[1][1]["mesh"]["groups"] == [([1, 3], "gloo"), ([0, 1], "gloo")]


@pytest.mark.torch
def test_the_constructor_takes_torchtitans_fields() -> None:
    titan = _titan()
    theirs = inspect.signature(titan.ParallelDims)
    public = [p for name, p in theirs.parameters.items() if not name.startswith("_")]
    mine = list(inspect.signature(ParallelDims).parameters.values())[: len(public)]
    assert [(p.name, p.default) for p in mine] == [(p.name, p.default) for p in public]
    assert all(
        p.kind is p.KEYWORD_ONLY
        for p in list(inspect.signature(ParallelDims).parameters.values())[len(public) :]
    )
    methods = (
        "build_mesh", "get_mesh", "get_optional_mesh", "get_activated_mesh", "spmd_meshes", "spmd_dense_mesh",
        "spmd_sparse_mesh", "get_dense_tp_mesh", "resolve_mesh", "resolve_shared_mesh",
        "get_all_one_dimensional_meshes", "world_mesh", "from_config",
    )  # fmt: skip
    for name in methods:
        assert hasattr(titan.ParallelDims, name) and hasattr(ParallelDims, name), name
    flags = [n for n, v in vars(titan.ParallelDims).items() if isinstance(v, property)]
    assert {"dp_enabled", "tp_enabled", "ep_enabled", "seq_len_divisor"} <= set(flags)
    for name in flags:
        assert isinstance(getattr(ParallelDims, name, None), property), name


def _doc_example() -> str:
    text = (Path(__file__).resolve().parents[1] / "docs" / "torchtitan.md").read_text()
    section = text[text.index("## Example") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


@pytest.mark.slow
def test_the_example_of_the_docs_runs_under_torchrun(tmp_path: Path, torch_dist: object) -> None:
    require("torch.distributed.fsdp")
    script = tmp_path / "example.py"
    script.write_text(_doc_example())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", str(script)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]  # torchrun fails unless every process exits with 0
    losses = [float(line.split()[-1]) for line in done.stdout.splitlines() if line.startswith("step ")]
    assert len(losses) == 3 and losses[2] < losses[0], done.stdout
    assert "DeviceMesh((dp_replicate=2, dp_shard=2)" in done.stdout, done.stdout


# ---------------------------------------------------------------- torch-free


def _oracle_group(topo: proctopo.ProcessTopology, rank: int, axes: tuple[str, ...]) -> list[int]:
    """The ranks of ``rank``'s group over ``axes``, from NumPy's C-order arange."""
    names = topo.get_axis_names()
    grid = np.arange(topo.world_size()).reshape(topo.dims)
    coord = np.unravel_index(rank, topo.dims)
    index = tuple(slice(None) if n in axes else int(c) for n, c in zip(names, coord))
    return sorted(int(r) for r in grid[index].ravel())


CONFIGS_16 = [
    _config(dp_shard=16),
    _config(dp_replicate=2, dp_shard=2, cp=2, tp=2),
    _config(pp=2, dp_shard=4, tp=2, ep=8),
    _config(pp=2, dp_replicate=2, dp_shard=2, tp=2, ep=2),
    _config(dp_shard=4, cp=2, tp=2, ep=4),
    _config(pp=4, tp=4),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "config", CONFIGS_16, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items() if v != 1)
)
def test_each_rank_set_is_one_group_and_every_dimension_has_its_ranks(
    config: dict[str, int], backend: str
) -> None:
    for rank in range(16):
        comm = RecordingComm(rank, 16)
        dims = ParallelDims(world_size=16, spmd_backend=backend, comm=comm, **config)
        grid = dims.build_grid()
        live = [(g.backend, tuple(sorted(g.ranks))) for g in comm.live_groups()]
        assert len(live) == len(set(live)), (rank, live)  # no rank set twice
        assert grid.communicators == len(live)
        used = set()
        for layout, names in dims._roots().values():
            topo = dims.dense_topology() if layout == "dense" else dims.sparse_topology()
            for name in names:
                axes, size, kind = dims._dim(layout, name)
                group = grid.get_group(list(axes), layout=layout, backend=kind)
                want = _oracle_group(topo, rank, axes)
                ranks = list(range(16)) if group is comm.parent() else group.ranks
                assert sorted(ranks) == want and len(want) == size, (rank, layout, name)
                if group is not comm.parent():
                    used.add((group.backend, tuple(sorted(group.ranks))))
        assert used == set(live), (rank, used, live)  # nothing made that no mesh uses
        assert comm.calls["split_group"] == 0 and comm.calls["spacer"] == 0


def test_disabled_dimensions_get_the_fake_backend_as_in_torchtitan() -> None:
    dims = ParallelDims(dp_replicate=1, dp_shard=2, cp=1, tp=2, pp=1, ep=1, world_size=4)
    assert dims._dim("dense", "pp")[2] == "fake"  # size 1
    assert dims._dim("dense", "dp_shard")[2] is None  # kept real for fully_shard
    assert dims._dim("sparse", "efsdp")[2] == "fake"  # no expert parallelism: not used
    assert dims._dim("dense", "loss_mesh")[2] is None  # a flattened dimension: always real
    partial = ParallelDims(1, 1, 1, 2, 2, 1, 4, "partial_dtensor")
    assert (
        partial._dim("dense", "fsdp")[:2] == (("dp_shard", "cp"), 1)
        and partial._dim("dense", "fsdp")[2] is None
    )
    assert partial._dim("dense", "dp_shard")[2] == "fake"
    experts = ParallelDims(1, 2, 1, 1, 2, 2, 4)
    assert experts._dim("sparse", "efsdp")[1:] == (1, None)


def test_the_expert_layout_takes_ep_from_dp_shard_cp_and_tp() -> None:
    dims = ParallelDims(dp_replicate=1, dp_shard=2, cp=1, tp=2, pp=2, ep=4, world_size=8)
    assert dims.sparse_topology().get_axis_names() == list(SPARSE_AXES)
    assert dims.sparse_topology().dims == [2, 1, 1, 4]
    assert dims.dense_topology().get_axis_names() == list(DENSE_AXES)
    # the ep groups are the (dp_shard, tp) groups: one rank set, one group
    grid = ParallelDims(1, 2, 1, 2, 2, 4, 8, comm=RecordingComm(5, 8)).build_grid()
    assert grid.get_group("ep", layout="sparse") is grid.get_group(["dp_shard", "tp"], layout="dense")
    assert grid.get_group_ranks("ep", layout="sparse") == [4, 5, 6, 7]


GridSizeError, InvalidTopologyError, InvalidArgumentError = (
    proctopo.GridSizeError, proctopo.InvalidTopologyError, proctopo.InvalidArgumentError,
)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"dp_shard": 3}, GridSizeError,
         "pp * dp_replicate * dp_shard * cp * tp = 1 * 1 * 3 * 1 * 2 = 6, but the world size is 8"),
        ({"tp": 0}, InvalidTopologyError, "axis 'tp' has size 0"),
        ({"dp_shard": -2}, InvalidArgumentError,
         "dp_shard must be -1 (the ranks left over) or at least 1, got -2"),
        ({"dp_shard": -1, "tp": 16}, InvalidArgumentError,
         "dp_replicate * cp * tp * pp = 16 is more than the world size 8"),
        ({"dp_shard": -1, "tp": 3}, GridSizeError, "= 6, but the world size is 8"),
        ({"dp_shard": 4, "ep": 3}, InvalidArgumentError,
         "ep=3 must divide dp_shard * cp * tp = 4 * 1 * 2 = 8"),
        ({"dp_shard": 4, "spmd_backend": "dtensor"}, InvalidArgumentError,
         "spmd_backend must be one of 'spmd_types', 'full_dtensor', 'partial_dtensor'; got 'dtensor'"),
        ({"dp_shard": 4, "ep": 0}, InvalidTopologyError, "axis 'ep' has size 0"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_with_the_rule(
    kwargs: dict[str, Any], error: type[Exception], text: str
) -> None:
    settings: dict[str, Any] = {**_config(tp=2), "world_size": 8, **kwargs}
    with pytest.raises(error) as info:
        ParallelDims(**settings)
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)


def test_the_flags_follow_the_sizes() -> None:
    for dr, ds, cp, tp, pp in itertools.product((1, 2), repeat=5):
        d = ParallelDims(dr, ds, cp, tp, pp, 1, dr * ds * cp * tp * pp)
        assert d.dp_enabled == (dr > 1 or ds > 1) and d.dp_replicate_enabled == (dr > 1)
        assert d.dp_shard_enabled == (ds > 1) and d.cp_enabled == (cp > 1) and d.tp_enabled == (tp > 1)
        assert d.pp_enabled == (pp > 1) and not d.ep_enabled
        assert d.dp_cp_enabled == (dr > 1 or ds > 1 or cp > 1) and d.fsdp_enabled == (ds > 1 or cp > 1)
        assert d.non_data_parallel_size == cp * tp * pp and d.seq_len_divisor == tp * cp * 2


def test_from_config_reads_torchtitans_parallelism_names() -> None:
    config = types.SimpleNamespace(
        data_parallel_replicate_degree=2, data_parallel_shard_degree=-1, context_parallel_degree=1,
        tensor_parallel_degree=2, pipeline_parallel_degree=1, expert_parallel_degree=1,
        spmd_backend="full_dtensor",
    )  # fmt: skip
    dims = ParallelDims.from_config(config, 8, comm=RecordingComm(0, 8))
    assert (dims.dp_replicate, dims.dp_shard, dims.tp, dims.spmd_backend) == (2, 2, 2, "full_dtensor")
    assert dims.build_grid().get_group_ranks("dp_replicate", layout="dense") == [0, 4]


def test_the_grid_is_built_once() -> None:
    comm = RecordingComm(0, 8)
    dims = ParallelDims(2, 2, 1, 2, 1, 1, 8, comm=comm)
    assert dims.build_grid() is dims.build_grid() is dims.grid
    calls = comm.calls["new_group"]
    dims.destroy()
    assert comm.live_groups() == [] and calls > 0


def test_import_needs_neither_torch_nor_torchtitan() -> None:
    code = (
        "import sys, proctopo.torchtitan as t\n"
        "from proctopo.testing import RecordingComm\n"
        "t.ParallelDims(1, 2, 1, 2, 1, 1, 4, comm=RecordingComm(0, 4)).build_grid()\n"
        "print(sorted(m for m in ('torch', 'torchtitan') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
