// proctopo._core: a thin pybind11 layer over proctopo::topology.
// Bulk results are NumPy arrays filled in place with the GIL released; C++
// exceptions become the Python classes that proctopo.errors re-exports.

#include <pybind11/numpy.h>
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <string>
#include <vector>

#include "proctopo/topology.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using proctopo::rank_t;
using proctopo::topology;

namespace {

using int_array = py::array_t<rank_t, py::array::c_style | py::array::forcecast>;

// Python exception classes, created once at import and kept for the process lifetime.
PyObject* exc_unknown_axis = nullptr;
PyObject* exc_coordinate = nullptr;
PyObject* exc_rank = nullptr;
PyObject* exc_topology = nullptr;
PyObject* exc_overflow = nullptr;
PyObject* exc_argument = nullptr;

std::vector<std::size_t> axis_list(const topology& t, const std::vector<std::string>& names) {
  return t.axis_indices(names);
}

py::array_t<rank_t> group_table(const topology& t, const std::vector<std::string>& names) {
  const auto axes = axis_list(t, names);
  const auto shape = t.group_table_shape(axes);
  py::array_t<rank_t> out({shape.num_groups, shape.group_size});
  rank_t* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    t.group_table(axes, data);
  }
  return out;
}

py::array_t<rank_t> group_of(const topology& t, rank_t rank, const std::vector<std::string>& names) {
  const auto axes = axis_list(t, names);
  py::array_t<rank_t> out(t.group_table_shape(axes).group_size);
  t.group_of(rank, axes, out.mutable_data());
  return out;
}

py::array_t<rank_t> match(const topology& t, const std::vector<rank_t>& partial) {
  if (partial.size() != t.ndim()) {
    throw std::invalid_argument("a partial coordinate needs " + std::to_string(t.ndim()) +
                                " values, but got " + std::to_string(partial.size()));
  }
  py::array_t<rank_t> out(t.match_count(partial.data()));
  t.match(partial.data(), out.mutable_data());
  return out;
}

py::array_t<rank_t> ranks(const topology& t, const int_array& coords) {
  const auto d = static_cast<py::ssize_t>(t.ndim());
  if (coords.ndim() != 2 || coords.shape(1) != d) {
    throw std::invalid_argument("coordinates must be an array of shape (n, " + std::to_string(d) +
                                "), one column per axis");
  }
  const auto n = static_cast<std::size_t>(coords.shape(0));
  py::array_t<rank_t> out(coords.shape(0));
  const rank_t* in = coords.data();
  rank_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    t.rank_of_bulk(in, n, o);
  }
  return out;
}

py::array_t<rank_t> coords(const topology& t, const int_array& ranks) {
  if (ranks.ndim() != 1) {
    throw std::invalid_argument("ranks must be a 1-D array, got " + std::to_string(ranks.ndim()) +
                                " dimensions");
  }
  const auto n = static_cast<std::size_t>(ranks.shape(0));
  py::array_t<rank_t> out({ranks.shape(0), static_cast<py::ssize_t>(t.ndim())});
  const rank_t* in = ranks.data();
  rank_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    t.coord_of_bulk(in, n, o);
  }
  return out;
}

// One integer argument: a Python int or any object with __index__ (NumPy integers), never a float.
rank_t index_arg(PyObject* v, const topology& t, std::size_t i_axis) {
  const std::string& axis = t.axes()[i_axis];
  if (PyLong_CheckExact(v)) {
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow == 0) return static_cast<rank_t>(value);
    proctopo::detail::throw_coordinate_out_of_range(py::repr(v).cast<std::string>(), axis, t.dims()[i_axis]);
  }
  if (PyFloat_Check(v) || !PyIndex_Check(v)) {
    throw py::type_error("the coordinate for axis '" + axis + "' must be an integer, got " +
                         py::repr(v).cast<std::string>() + " (" + Py_TYPE(v)->tp_name + ")");
  }
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(v));
  if (!i) throw py::error_already_set();
  return index_arg(i.ptr(), t, i_axis);
}

// get_rank(**kwargs) in one crossing. `names` holds the axis names as Python strings
// (kept by the caller), so each lookup reuses their cached hashes.
rank_t rank_of_kwargs(const topology& t, const py::dict& kwargs, const py::list& names) {
  const std::size_t n = t.ndim();
  constexpr std::size_t small = 16;
  rank_t stack[small];
  std::vector<rank_t> heap(n > small ? n : 0);
  rank_t* coord = n > small ? heap.data() : stack;
  if (names.size() != n) throw std::invalid_argument("names must hold one str per axis");
  const bool complete = kwargs.size() == n;
  for (std::size_t i = 0; complete && i < n; ++i) {
    PyObject* v = PyDict_GetItem(kwargs.ptr(), names[i].ptr());  // borrowed
    if (v == nullptr) break;
    coord[i] = index_arg(v, t, i);
    if (i + 1 == n) return t.rank_of(coord);
  }
  if (n == 0 && complete) return 0;
  for (const auto& item : kwargs) {
    const auto key = py::str(item.first).cast<std::string>();
    if (t.find_axis(key) < 0) t.axis_index(key);  // throws unknown_axis naming it
  }
  std::string missing;
  for (std::size_t i = 0; i < n; ++i) {
    if (!kwargs.contains(names[i])) missing += (missing.empty() ? "'" : ", '") + t.axes()[i] + "'";
  }
  throw std::invalid_argument("get_rank() needs one coordinate for every axis; missing " + missing +
                              "; use filter_match() for a partial coordinate");
}

py::tuple state(const topology& t) { return py::make_tuple(t.axes(), t.dims()); }

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "proctopo's C++ core (thin bindings; use proctopo.ProcessTopology)";

  // The classes live in proctopo.errors (the whole hierarchy, in Python); this module only
  // translates C++ exceptions to them.
  py::module_ errors = py::module_::import("proctopo.errors");
  const auto keep = [&errors](const char* name) { return py::object(errors.attr(name)).release().ptr(); };
  exc_argument = keep("InvalidArgumentError");
  exc_topology = keep("InvalidTopologyError");
  exc_overflow = keep("WorldSizeOverflowError");
  exc_unknown_axis = keep("UnknownAxisError");
  exc_coordinate = keep("CoordinateOutOfRangeError");
  exc_rank = keep("RankOutOfRangeError");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const proctopo::unknown_axis& e) {
      PyErr_SetString(exc_unknown_axis, e.what());
    } catch (const proctopo::coordinate_out_of_range& e) {
      PyErr_SetString(exc_coordinate, e.what());
    } catch (const proctopo::rank_out_of_range& e) {
      PyErr_SetString(exc_rank, e.what());
    } catch (const proctopo::world_size_overflow& e) {
      PyErr_SetString(exc_overflow, e.what());
    } catch (const proctopo::invalid_topology& e) {
      PyErr_SetString(exc_topology, e.what());
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(exc_argument, e.what());
    }
  });

  m.attr("ANY") = proctopo::any;

  py::class_<topology>(m, "Topology")
      .def(py::init<std::vector<std::string>, std::vector<rank_t>>(), "axes"_a, "dims"_a)
      .def_property_readonly("axes", &topology::axes)
      .def_property_readonly("dims", &topology::dims)
      .def_property_readonly("strides", &topology::strides)
      .def_property_readonly("world_size", &topology::world_size)
      .def_property_readonly("ndim", &topology::ndim)
      .def("find_axis", &topology::find_axis, "name"_a)
      .def("dim", &topology::dim, "name"_a)
      .def("axis_indices", &topology::axis_indices, "names"_a)
      .def("rank_of", py::overload_cast<const std::vector<rank_t>&>(&topology::rank_of, py::const_),
           py::arg("coord").noconvert())
      .def("rank_of_kwargs", &rank_of_kwargs, "kwargs"_a, "names"_a)
      .def("coord_of", py::overload_cast<rank_t>(&topology::coord_of, py::const_),
           py::arg("rank").noconvert())
      .def("ranks", &ranks, "coords"_a)
      .def("coords", &coords, "ranks"_a)
      .def("match", &match, py::arg("partial").noconvert())
      .def("groups", &group_table, "axes"_a)
      .def("group_of", &group_of, py::arg("rank").noconvert(), "axes"_a)
      .def(
          "group_list",
          [](const topology& t, rank_t rank, const std::vector<std::string>& names) {
            return t.group_of(rank, axis_list(t, names));
          },
          py::arg("rank").noconvert(), "axes"_a)
      .def(
          "group_index",
          [](const topology& t, rank_t rank, const std::vector<std::string>& names) {
            return t.group_index(rank, axis_list(t, names));
          },
          py::arg("rank").noconvert(), "axes"_a)
      .def(
          "shift",
          [](const topology& t, rank_t rank, const std::string& axis, rank_t delta, bool periodic) {
            return t.shift(rank, t.axis_index(axis), delta, periodic);
          },
          py::arg("rank").noconvert(), "axis"_a, py::arg("delta").noconvert(), "periodic"_a)
      .def("rank_repr", &topology::rank_repr, py::arg("rank").noconvert(), "omit"_a, "inner_sep"_a,
           "outer_sep"_a)
      .def("describe", &topology::describe)
      .def(py::self == py::self)  // NOLINT
      .def("__hash__", [](const topology& t) { return py::hash(state(t)); })
      .def(py::pickle(&state, [](const py::tuple& s) {
        return topology(s[0].cast<std::vector<std::string>>(), s[1].cast<std::vector<rank_t>>());
      }));

  m.def("prime_factors", &proctopo::prime_factors, py::arg("n").noconvert());
  m.def("dims_create", &proctopo::dims_create, py::arg("n").noconvert(), "dims"_a);
  m.def("parse_order", &proctopo::parse_order, "order"_a);
}
