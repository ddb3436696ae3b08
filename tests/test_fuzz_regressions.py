"""The fuzz target's inputs, replayed without atheris: the seed corpus and every input that failed.

fuzz/harness.py compares each answer of the topology API with the pure-Python oracle of
fuzz/oracle.py; an input passes when every answer and every exception class agree.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import proctopo
import pytest

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
CORPUS = sorted(p for p in (FUZZ / "corpus").iterdir() if p.is_file())
REGRESSIONS = sorted(p for p in (FUZZ / "regressions").iterdir() if p.is_file())


@pytest.fixture(scope="module")
def harness() -> Iterator[Any]:
    sys.path.insert(0, str(FUZZ))
    try:
        import harness

        yield harness
    finally:
        sys.path.remove(str(FUZZ))


def test_the_inputs_are_there() -> None:
    assert len(CORPUS) >= 100 and REGRESSIONS


def _replay(*paths: Path) -> subprocess.CompletedProcess[str]:
    """fuzz/replay.py in a child process, its address space capped (fuzz/replay.py says how)."""
    return subprocess.run(
        [sys.executable, str(FUZZ / "replay.py"), "--memory-mb", "3072", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_seed_corpus() -> None:
    out = _replay(FUZZ / "corpus")
    assert out.returncode == 0, out.stderr[-5000:]
    assert out.stdout.strip() == f"{len(CORPUS)} passed, 0 failed", out.stdout


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_regression_input(path: Path) -> None:
    out = _replay(path)
    assert out.returncode == 0 and out.stdout.strip() == "1 passed, 0 failed", out.stderr[-5000:]


def _off_by_one(name: str) -> Callable[..., Any]:
    real = getattr(proctopo.ProcessTopology, name)

    def wrong(self: Any, *args: Any, **kwargs: Any) -> Any:
        got = real(self, *args, **kwargs)
        if isinstance(got, list) and got and isinstance(got[0], int):
            return [*got[:-1], got[-1] + 1]
        if isinstance(got, tuple) and got and isinstance(got[0], int):
            return (
                type(got)(got[0] + 1, *got[1:]) if type(got) is tuple else got._replace(**{got._fields[0]: 5})
            )
        if isinstance(got, int) and got >= 0:
            return got + 1
        if hasattr(got, "tolist"):
            return got[::-1] if got.size > 1 else got + 1
        return got

    return wrong


@pytest.mark.parametrize(
    "method",
    ["get_coord", "get_rank", "filter_match", "group_of", "group_index", "shift", "get_rank_repr", "groups"],
)
def test_the_corpus_catches_a_planted_mistake(
    harness: Any, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each method, made wrong, fails some input of the seed corpus: the comparison has teeth."""
    if method == "get_rank_repr":
        real = proctopo.ProcessTopology.get_rank_repr
        monkeypatch.setattr(
            proctopo.ProcessTopology, method, lambda self, *a, **k: real(self, *a, **k).replace("0", "1")
        )
    else:
        monkeypatch.setattr(proctopo.ProcessTopology, method, _off_by_one(method))
    caught = 0
    for path in CORPUS:
        try:
            harness.run_one(path.read_bytes())
        except AssertionError:
            caught += 1
    assert caught > 0, f"no input of the seed corpus noticed a wrong {method}"


@pytest.mark.parametrize("name", ["prime_factors", "dims_create"])
def test_the_corpus_catches_wrong_arithmetic(
    harness: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = getattr(proctopo, name)
    monkeypatch.setattr(proctopo, name, lambda *a: [*sorted(real(*a), reverse=True)[:-1], 1])
    caught = 0
    for path in CORPUS:
        try:
            harness.run_one(path.read_bytes())
        except AssertionError:
            caught += 1
    assert caught > 0, f"no input of the seed corpus noticed a wrong {name}"


def _child(code: str) -> None:
    """Run ``code`` in a fresh interpreter, so that a crash fails the test instead of the run."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", (
        out.returncode,
        out.stdout,
        out.stderr[-3000:],
    )


def test_bool_and_intenum_arguments_in_a_fresh_interpreter() -> None:
    """A bool or an IntEnum member is an integer argument on every Python (one once crashed 3.9)."""
    _child(
        """if True:
        import enum
        import proctopo
        t = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
        assert t.get_rank(pipe=True, data=0) == 2
        assert t.get_rank(pipe=False, data=True) == 1
        class Stage(enum.IntEnum):
            FIRST = 0
            LAST = 1
        assert t.get_rank(pipe=Stage.LAST, data=Stage.FIRST) == 2
        assert t.get_coord(Stage.LAST) == (0, 1)
        assert t.shift(True, "data", Stage.LAST) == 0
        assert t.filter_match(pipe=True) == [2, 3]
        assert t.group_list(Stage.LAST, "pipe") == [1, 3]
        assert proctopo.ProcessTopology(["a"], [True]).dims == [1]
        assert proctopo.dims_create(Stage.LAST, [True]) == [1]
        print("ok")
        """
    )


def test_wide_intenum_values_are_named_by_their_number() -> None:
    """An IntEnum member past 64 bits is named by its value in the error, on every Python."""
    _child(
        """if True:
        import enum
        import proctopo
        t = proctopo.ProcessTopology(["pipe", "data"], [2, 2])
        class Wide(enum.IntEnum):
            BIG = 2**70
        for call, text in [
            (lambda: t.get_coord(Wide.BIG), "rank 1180591620717411303424 is not in the topology"),
            (lambda: t.get_rank(pipe=Wide.BIG, data=0), "coordinate 1180591620717411303424 is out of range"),
            (lambda: proctopo.prime_factors(Wide.BIG), "n 1180591620717411303424 does not fit"),
            (lambda: proctopo.ProcessTopology(["a"], [Wide.BIG]), "world size 1180591620717411303424 does"),
        ]:
            try:
                call()
            except proctopo.ProctopoError as exc:
                assert text in str(exc), str(exc)
            else:
                raise AssertionError(text)
        print("ok")
        """
    )


def test_mapping_iterates_lazily_on_huge_worlds() -> None:
    """The {coordinate: rank} view starts at once whatever the axis sizes (O(1) memory)."""
    topo = proctopo.ProcessTopology(["a", "b"], [2**61, 2])
    assert [tuple(c) for c in islice(topo.mapping, 3)] == [(0, 0), (0, 1), (1, 0)]
    assert [(tuple(c), r) for c, r in islice(topo.mapping.items(), 2)] == [((0, 0), 0), ((0, 1), 1)]
    assert list(islice(topo.mapping.keys(), 1)) == [(0, 0)]
