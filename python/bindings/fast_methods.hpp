#pragma once
// Fast entries (vectorcall) for the hottest ProcessTopology methods, and the one place the
// binding reads pybind11's instance layout; see fast_methods.cpp.

#include <pybind11/pybind11.h>

#include "proctopo/topology.hpp"

namespace proctopo_binding {

/// The topology held by `obj`, an instance of proctopo._core.Topology (or a subclass), or
/// nullptr when it was made by __new__ without __init__. No type check: the caller's job.
const proctopo::topology* held_topology(PyObject* obj) noexcept;

/// A new tuple of `type` (tuple or a subclass) holding the ints `values`; nullptr with a
/// Python error set when memory runs out.
PyObject* int_tuple(PyTypeObject* type, const proctopo::rank_t* values, std::size_t n);

/// Adds to the module `install_fast_methods(owner)` and `fast_method_names`, from the one
/// table of fast entries, and `check_pybind11_layout()`; runs that check once (a failure
/// fails the import). Call once at import, after proctopo::topology is registered.
void add_fast_methods(pybind11::module_& m);

}  // namespace proctopo_binding
