"""The benchmark report generator runs and keeps every section (no timing is asserted).

``bench/compare.py --quick`` is run on its pure-Python parts (proctopo and NumPy at
1,024 ranks; no C++, no peers that need torch, no simulations), then the report is
rendered again from a results.json that carries data of the other parts, so a change
that drops a section (the Megatron simulation, the real jobs) fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
X = "\N{MULTIPLICATION SIGN}"  # the report writes shapes and ratios with it

pytestmark = pytest.mark.skipif(not (BENCH / "compare.py").exists(), reason="bench/ is not in this tree")


def _compare(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "compare.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=BENCH,
        check=False,
    )


def _grid_sim_data() -> dict[str, Any]:
    row = {"world": 65536, "axes": ["pipe", "data", "model"], "dims": [8, 1024, 8]}
    return {
        "command": "python bench/grid_sim.py",
        "date": "2026-01-01",
        "python": "3.11",
        "arch": "x86_64",
        "cpus": 2,
        "machine": "a CPU, 2 CPUs, load average 1 / 1 / 1 (1 / 5 / 15 min) at the start",
        "repeat": 1,
        "bound": 30.0,
        "rows": [
            {
                **row,
                "requested": "local",
                "lib": "proctopo",
                "strategy": "local",
                "new_group": 4,
                "split_group": 0,
                "first_ms": 0.4,
                "median_ms": 0.3,
                "wall_ms": 0.3,
                "topo_ms": 0.1,
                "status": "ok",
            },
            {
                **row,
                "lib": "DeepSpeed 0.19.8",
                "strategy": "global (its only way)",
                "split_group": 0,
                "new_group": 17472,
                "expected_calls": 17472,
                "first_ms": 25e3,
                "median_ms": 25e3,
                "wall_ms": 25e3,
                "topo_ms": 240.0,
                "status": "ok",
            },
        ],
    }


def _megatron_data() -> dict[str, Any]:
    case = {"etp": 1, "gloo": True, "rank": 0, "stage": 0}
    sizes = {
        "tensor_model_parallel_size": 8,
        "context_parallel_size": 2,
        "expert_model_parallel_size": 8,
        "pipeline_model_parallel_size": 8,
    }
    return {
        "command": "python bench/grid_sim.py --megatron",
        "date": "2026-01-01",
        "python": "3.11",
        "machine": "a CPU",
        "world": 65536,
        "sizes": sizes,
        "rows": [
            {
                **case,
                "lib": "megatron-core",
                "status": "ok",
                "new_group": 154137,
                "communicators": 20,
                "rank_sets": 14,
                "cpu_ms": 2500.0,
            },
            {
                **case,
                "lib": "proctopo",
                "requested": "local",
                "status": "ok",
                "strategy": "local",
                "new_group": 13,
                "split_group": 0,
                "communicators": 13,
                "rank_sets": 13,
                "registered": 13,
                "cpu_ms": 60.0,
                "wall_ms": 60.0,
            },
        ],
    }


def _scaling_data() -> dict[str, Any]:
    machine = {"cpu": "a CPU", "cores": "2", "load": "1 / 1 / 1", "python": "3.11"}

    def point(wall: float, calls: int) -> dict[str, Any]:
        return {
            "status": "ok",
            "memory": {"rss": 2**28, "pss": 2**27},
            "small_allreduce_median": 0.004,
            "check_alone_median": 0.005,
            "jobs": 2,
            "wall_median": wall,
            "wall_slowest": wall * 1.1,
            "wall_per_job": [wall, wall],
            "new_group": [calls, calls],
            "split_group": [0, 0],
            "live": [4, 4],
            "distinct": [4, 4],
            "check_median": 0.01 if calls == 4 else None,
            "check_cpu_median": 0.001 if calls == 4 else None,
            "cpu_median": 0.004,
            "in_calls_median": 0.03,
        }

    points = {
        "proctopo-local": point(0.050, 4),
        "proctopo-local-noverify": point(0.040, 4),
        "deepspeed": point(0.045, 14),
    }
    return {
        "command": "python bench/scaling.py",
        "date": "2026-01-01 00:00 UTC",
        "machine_start": machine,
        "machine_end": machine,
        "versions": {"torch": "2.13.0", "deepspeed": "0.19.8", "megatron-core": "0.16.1"},
        "config": {"sizes": [8], "reps": 2},
        "points": {"8": points},
        "skipped": {"64": "not enough memory"},
        "memory_per_process": {"world": 8, "pss": 2**27, "rss": 2**28},
        "elapsed_s": 10.0,
    }


@pytest.mark.slow
def test_quick_pure_python_run_and_every_section(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    out = tmp_path / "quick"
    run = _compare(
        "--quick",
        "--libs",
        "numpy",
        "--sizes",
        "1024",
        "--axes",
        "3",
        "--no-cpp",
        "--no-grid-sim",
        "--no-megatron",
        "--out-dir",
        str(out),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = (out / "RESULTS.md").read_text()
    assert "## Goals" in report
    raw = json.loads((out / "results.json").read_text())
    assert {r["lib"] for r in raw["results"]} == {"proctopo", "numpy"}
    for rec in raw["results"]:  # every operation of both ran (or has no counterpart), none failed
        statuses = {op: o.get("status") for op, o in rec["ops"].items()}
        assert set(statuses.values()) <= {"ok", "unsupported"}, (rec["lib"], statuses)
    # NumPy has a counterpart of each of the 7 operations after construction, all equal to proctopo's.
    assert "All 7 peer results that have a proctopo counterpart hold the same values" in report
    assert raw["grid_sim"] is None and raw["megatron_sim"] is None and raw["scaling"] is None

    # The other parts' data, rendered from results.json: no section may go missing.
    raw.update(grid_sim=_grid_sim_data(), megatron_sim=_megatron_data(), scaling=_scaling_data())
    (out / "results.json").write_text(json.dumps(raw))
    # The planning section (bench/plan_scaling.py writes it) survives a rewrite, once, at the end.
    kept = (
        "<!-- plan_scaling:begin -->\n## Planning time and memory (bench/plan_scaling.py)\nkept\n"
        "<!-- plan_scaling:end -->"
    )
    (out / "RESULTS.md").write_text((out / "RESULTS.md").read_text() + "\n" + kept + "\n")
    rerender = _compare("--rerender", str(out / "results.json"), "--out-dir", str(out))
    assert rerender.returncode == 0, rerender.stderr[-3000:]
    report = (out / "RESULTS.md").read_text()
    assert report.count(kept) == 1 and report.rstrip().endswith(kept)
    assert "## Scale simulation (bench/grid_sim.py)" in report
    assert (
        f"| pipe=8 {X} data=1,024 {X} model=8 | DeepSpeed 0.19.8 | global (its only way) | 17,472 |" in report
    )
    assert "## Megatron's parallel state at scale (bench/grid_sim.py --megatron)" in report
    assert "| 1 | yes | 0 (0) | megatron-core 0.16.1 | global (its only way) | 154,137 |" in report
    assert "## Real group creation (bench/scaling.py)" in report
    assert f"| 8 (2 {X} 2 {X} 2) | DeepSpeed 0.19.8 | 45 ms |" in report
    assert "- 64 ranks not run: not enough memory" in report
    # The goals of the real jobs are judged from the data: 45 ms against 50 ms is not "no slower".
    goal = (
        "| proctopo `local` (check and placement exchange on) no slower than DeepSpeed's grid at 8 ranks "
        "| gloo jobs |"
    )
    row = report.split(goal)[1].split("\n")[0]
    assert row.startswith(f" DeepSpeed / proctopo = 0.90{X}"), row
    assert row.endswith("| **no** |"), row
