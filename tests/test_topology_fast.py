"""The fast entries of ProcessTopology: one table in the core, installed on the class, and the
pybind11 layout they read (checked against the versions the build admits)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from proctopo import ProcessTopology, _core

ROOT = Path(__file__).resolve().parents[1]


def _build_requirement(name: str) -> Requirement:
    text = (ROOT / "pyproject.toml").read_text()
    section = text[text.index("[build-system]") :]
    requires = re.search(r"^requires\s*=\s*\[(.*?)\]", section, re.M | re.S)
    assert requires is not None
    found = [Requirement(r) for r in re.findall(r'"([^"]+)"', requires.group(1))]
    return next(r for r in found if r.name == name)


def _asserted_range() -> tuple[Version, Version]:
    """The pybind11 versions fast_methods.cpp's static_assert admits: [min, end)."""
    source = (ROOT / "python" / "bindings" / "fast_methods.cpp").read_text()

    def bound(which: str) -> Version:
        hexed = re.search(rf"#define PROCTOPO_PYBIND11_{which}_HEX 0x([0-9A-Fa-f]{{8}})", source)
        assert hexed is not None, which
        value = int(hexed.group(1), 16)
        return Version(f"{value >> 24}.{(value >> 16) & 0xFF}")

    return bound("MIN"), bound("END")


def test_the_layout_the_fast_path_reads_is_pybind11s() -> None:
    """The binding reads a Topology through pybind11's private instance layout; this check
    (also run at import, where a failure fails the import) compares it with pybind11's own cast."""
    built_with = Version(_core.check_pybind11_layout())
    assert built_with in _build_requirement("pybind11").specifier


def test_the_build_requirement_and_the_static_assert_admit_the_same_pybind11() -> None:
    spec = _build_requirement("pybind11").specifier
    low, end = _asserted_range()
    assert str(spec) == f"<{end},>={low}", "pyproject.toml's pybind11 bounds differ from fast_methods.cpp's"
    assert low in spec and end not in spec


def test_every_fast_entry_of_the_table_is_installed_over_its_method() -> None:
    names = _core.fast_method_names
    assert len(set(names)) == len(names) >= 6
    for name in names:
        entry = ProcessTopology.__dict__[name]
        assert type(entry).__name__ == "fast_method", name
        wrapped = entry.__wrapped__
        assert type(wrapped).__name__ == "function" and wrapped.__name__ == name
        assert entry.__doc__ == wrapped.__doc__ and entry.__qualname__ == f"ProcessTopology.{name}"
    # Installing again keeps each method wrapped once, not a fast entry around a fast entry.
    before = {n: ProcessTopology.__dict__[n].__wrapped__ for n in names}
    _core.install_fast_methods(ProcessTopology)
    assert {n: ProcessTopology.__dict__[n].__wrapped__ for n in names} == before


def test_an_uninitialised_topology_is_never_read() -> None:
    blank = ProcessTopology.__new__(ProcessTopology)
    with pytest.raises(AttributeError):
        blank.get_coord(0)  # no _core slot: the Python method says so
    blank._core = _core.Topology.__new__(_core.Topology)
    blank.ProcessCoord = tuple
    for call in (lambda: blank.get_coord(0), lambda: blank.get_rank(), lambda: blank.group_list(0, [])):
        with pytest.raises(TypeError, match="never initialised"):
            call()
