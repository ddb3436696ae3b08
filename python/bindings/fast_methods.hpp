#pragma once
// Fast entries (vectorcall) for the hottest ProcessTopology methods; see fast_methods.cpp.

#include <pybind11/pybind11.h>

#include "proctopo/topology.hpp"

namespace proctopo_binding {

/// Adds `fast_method(what, owner, wrapped)` to the module: call once at import, after
/// proctopo::topology is registered with pybind11.
void add_fast_methods(pybind11::module_& m);

}  // namespace proctopo_binding
