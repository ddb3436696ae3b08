#!/usr/bin/env python3
"""Run every benchmark of proctopo and regenerate what reports them.

One command for the C++ benchmarks (Google Benchmark, built first when missing or
older than its sources), the Python peer comparison, the grid's scale simulation
(``grid_sim.py``), Megatron's parallel state at 65,536 ranks (``grid_sim.py
--megatron``), real process-group creation on gloo jobs (``scaling.py``) and then the
planner's time and memory (``python bench/plan_scaling.py --write``, its section of
RESULTS.md). It writes ``bench/RESULTS.md``, ``bench/results.json``,
``bench/compare.png``, ``bench/scaling.png`` and the short benchmark summary of
``README.md`` (between its ``bench:begin`` / ``bench:end`` markers), each with the CPU
model and load average.

    python bench/run_all.py            # everything, about half an hour on 2 cores
    python bench/run_all.py --quick    # smoke run into build/bench-quick/ (README and the
                                       # planning section untouched: plan_scaling.py is left out)
    python bench/run_all.py --readme-only   # rewrite README's summary from bench/results.json

Other switches are passed to ``bench/compare.py`` (see ``compare.py --help``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BINARY = REPO / "build" / "dev" / "bench" / "proctopo_bench"
README = REPO / "README.md"
BEGIN = (
    "<!-- bench:begin: written by `python bench/run_all.py` from bench/results.json; do not edit by hand -->"
)
END = "<!-- bench:end -->"

sys.path.insert(0, str(HERE))
import compare  # noqa: E402  (bench/ is not a package)
from _common import fmt_time  # noqa: E402


def _log(msg: str) -> None:
    print(f"[run_all] {msg}", file=sys.stderr, flush=True)


def ensure_binary() -> Path | None:
    """The C++ benchmark binary, built (dev preset) when missing or older than its sources."""
    sources = [*(REPO / "cpp").rglob("*.[ch]pp"), HERE / "bench_topology.cpp", HERE / "CMakeLists.txt"]
    newest = max((p.stat().st_mtime for p in sources if p.exists()), default=0.0)
    if BINARY.exists() and BINARY.stat().st_mtime >= newest:
        return BINARY
    if shutil.which("cmake") is None:
        _log("cmake not found: the C++ benchmarks are left out (install cmake and libbenchmark-dev)")
        return BINARY if BINARY.exists() else None
    _log(
        "building the C++ benchmarks: "
        "cmake --preset dev && cmake --build --preset dev --target proctopo_bench"
    )
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    for cmd in (
        ["cmake", "--preset", "dev"],
        ["cmake", "--build", "--preset", "dev", "--target", "proctopo_bench"],
    ):
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            _log(f"`{' '.join(cmd)}` failed; the C++ benchmarks are left out:\n{proc.stderr[-2000:]}")
            return None
    return BINARY


# ----------------------------------------------------------------------------- README
def _op(raw: dict[str, Any], lib: str, world: int, op: str, naxes: int = 3) -> float | None:
    for r in raw.get("results", []):
        if r["lib"] == lib and r["world"] == world and r["naxes"] == naxes:
            o = r["ops"].get(op, {})
            return float(o["median"]) if o.get("status") == "ok" else None
    return None


def _memory(raw: dict[str, Any], lib: str, world: int, naxes: int = 3) -> int | None:
    for r in raw.get("results", []):
        if r["lib"] == lib and r["world"] == world and r["naxes"] == naxes and r.get("memory"):
            return int(r["memory"]["traced"])
    return None


def _loads(text: str) -> list[float]:
    return [float(x) for x in text.replace("/", " ").split() if x.replace(".", "", 1).isdigit()]


def readme_section(raw: dict[str, Any]) -> str:
    """README's benchmark summary: a few lines, every figure from ``raw`` (results.json), the load
    stated plainly, and the link to bench/RESULTS.md, which has the full report."""
    meta = raw["meta"]
    m = meta["machine"]
    t = fmt_time
    start, end = meta.get("load_start", "?"), m["load"]
    cores = int(m["cores"]) if str(m["cores"]).isdigit() else 0
    busy = max(_loads(f"{start} {end}"), default=0.0)
    load = f"load average (1 / 5 / 15 min) {start} at the start and {end} at the end of the run" + (
        f", above its {cores} cores: the machine was busy with other work, which inflates the times; "
        "compare the ratios, measured side by side"
        if cores and busy > cores
        else f", below its {cores} cores"
    )
    lines = [
        BEGIN,
        f"From `python bench/run_all.py` on {meta['date']}, commit {meta.get('commit', '?')}, on a "
        f"{m['cores']}-core machine ({m['cpu']}); {load}.",
        "",
    ]
    w = 65536
    d, p = _op(raw, "deepspeed", w, "construct"), _op(raw, "proctopo", w, "construct")
    dc, pc = _op(raw, "deepspeed", w, "get_coord"), _op(raw, "proctopo", w, "get_coord")
    if d and p and dc and pc:
        lines.append(
            f"- A topology of 65,536 ranks: built in {t(p)} (DeepSpeed: {t(d)}); `get_coord` in {t(pc)} "
            f"(DeepSpeed: {t(dc)})."
        )
    sim = raw.get("grid_sim") or {}
    rows = sim.get("rows", []) if "error" not in sim else []
    ds = next(
        (x for x in rows if x.get("world") == w and str(x.get("lib", "")).startswith("DeepSpeed")), None
    )
    loc = next(
        (
            x
            for x in rows
            if x.get("world") == w
            and x.get("lib") == "proctopo"
            and x.get("requested") == "local"
            and len(x["axes"]) == 3
        ),
        None,
    )
    if ds and loc and ds.get("status") == "ok":
        lines.append(
            f"- The grid on one rank of 65,536 (simulated): {loc['new_group']} `new_group` calls and "
            f"{t(loc['median_ms'] / 1e3)} of Python (DeepSpeed: {ds['new_group']:,} calls, "
            f"{t(ds['median_ms'] / 1e3)})."
        )
    sc = raw.get("scaling") or {}
    ratios = []
    if sc and "error" not in sc:
        scaling = compare._bench_module("scaling")
        for world in sorted(int(x) for x in sc.get("points", {})):
            dp = scaling._point(sc, world, "deepspeed")
            pp = scaling._point(sc, world, "proctopo-local")
            bare = scaling._point(sc, world, "proctopo-local-noverify")
            if dp and pp and bare:
                d = dp["wall_median"]
                ratios.append((world, d / pp["wall_median"], d / bare["wall_median"]))
    if ratios:
        lo, hi = min(r[1] for r in ratios), max(r[1] for r in ratios)
        blo, bhi = min(r[2] for r in ratios), max(r[2] for r in ratios)
        worlds = f"{ratios[0][0]}-{ratios[-1][0]}" if len(ratios) > 1 else str(ratios[0][0])
        verdict = (
            "DeepSpeed's grid is the faster one"
            if hi < 0.95
            else ("proctopo's grid is the faster one" if lo > 1.05 else "both grids take about as long")
        )
        start = (sc.get("machine_start") or {}).get("load", "?")
        end = (sc.get("machine_end") or {}).get("load", "?")
        lines.append(
            f"- Real gloo jobs of {worlds} local processes (`python bench/scaling.py`, "
            f"{sc.get('date', '?')}, load {start} at the start and {end} at the end): {verdict} "
            "(DeepSpeed's time / proctopo's: "
            f"{lo:.2f}-{hi:.2f}). The difference is proctopo's set-up exchange, the fingerprint check and "
            "the placement, which DeepSpeed does not make; without it (`verify=False`) the ratio is "
            f"{blo:.2f}-{bhi:.2f}."
        )
    lines += [
        "",
        "Every goal, met or not, with its ratio and the reason, the full tables against DeepSpeed, "
        "Megatron, DeviceMesh and NumPy, and the plots: [bench/RESULTS.md](bench/RESULTS.md).",
        END,
    ]
    return "\n".join(lines)


def update_readme(raw: dict[str, Any], path: Path = README) -> bool:
    """Replace the text between the markers with the summary; False (README untouched) without them."""
    text = path.read_text()
    marker = BEGIN.split(":")[0]
    if marker not in text or END not in text:
        _log(f"{path}: no {marker} ... {END} markers; README left as it is")
        return False
    start, end = text.index(marker), text.index(END) + len(END)
    new = text[:start] + readme_section(raw) + text[end:]
    if new != text:
        path.write_text(new)
    return True


def run_plan_scaling() -> int:
    """``python bench/plan_scaling.py --write``: the planning section of bench/RESULTS.md, measured
    again (compare.py, which rewrites the rest of the report, keeps the section); its exit status."""
    command = [sys.executable, str(HERE / "plan_scaling.py"), "--write"]
    _log("planning time and memory: python bench/plan_scaling.py --write")
    proc = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        _log(f"bench/plan_scaling.py failed (exit {proc.returncode}); RESULTS.md keeps its earlier section")
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True)
    ap.add_argument(
        "--quick", action="store_true", help="smoke run into build/bench-quick/; README untouched"
    )
    ap.add_argument(
        "--readme-only", action="store_true", help="rewrite README's section from bench/results.json"
    )
    ap.add_argument("--no-build", action="store_true", help="do not build the C++ benchmarks when stale")
    args, rest = ap.parse_known_args(argv)
    if args.readme_only:
        ok = update_readme(json.loads((HERE / "results.json").read_text()))
        return 0 if ok else 1
    cmp_args = ["--all", *(["--quick"] if args.quick else []), *rest]
    if "--cpp-bench" not in rest and "--cpp-json" not in rest and "--no-cpp" not in rest:
        binary = BINARY if args.no_build else ensure_binary()
        if binary and binary.exists():
            cmp_args += ["--cpp-bench", str(binary.relative_to(REPO))]
    compare._COMMAND = " ".join(["python", "bench/run_all.py", *argv])
    rc = compare.main(cmp_args)
    if rc != 0:
        return rc
    out_dir = REPO / "build" / "bench-quick" if args.quick else HERE
    if "--out-dir" in rest:
        out_dir = Path(rest[rest.index("--out-dir") + 1])
    raw = json.loads((out_dir / "results.json").read_text())
    if args.quick or out_dir.resolve() != HERE:
        (out_dir / "README-bench.md").write_text(readme_section(raw) + "\n")
        _log(f"README section written to {out_dir / 'README-bench.md'} (README.md untouched)")
        _log("planning time and memory left out: bench/plan_scaling.py --write writes bench/RESULTS.md")
        return 0
    rc = run_plan_scaling()
    if update_readme(raw):
        _log("README.md: benchmark section rewritten")
    return rc


if __name__ == "__main__":
    sys.exit(main())
