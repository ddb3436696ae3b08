// proctopo._core: a thin pybind11 layer over proctopo::topology.
//
// It converts Python arguments (one converter for every rank, coordinate, size and
// shift), calls the core, and translates C++ exceptions to the classes of
// proctopo.errors. The rules and their messages live in the core; a Python int too
// wide for 64 bits is handed to the core's error functions as its exact text.
// Bulk results are NumPy arrays filled in place with the GIL released.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fast_methods.hpp"
#include "proctopo/topology.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using proctopo::rank_t;
using proctopo::detail::quote;  // every name in an error text, escaped as the core's own errors write it
using proctopo::topology;

namespace {

// Python exception classes of proctopo.errors, kept for the process lifetime.
PyObject* exc_unknown_axis = nullptr;
PyObject* exc_coordinate = nullptr;
PyObject* exc_rank = nullptr;
PyObject* exc_topology = nullptr;
PyObject* exc_overflow = nullptr;
PyObject* exc_argument = nullptr;

std::string text_of(py::handle v) { return py::repr(v).cast<std::string>(); }

// ---------------------------------------------------------------- argument conversion

// An integer argument: its value when it fits in 64 bits; otherwise `wide` holds its
// exact decimal text and `value` only its sign (-1 or 1).
struct int_arg {
  rank_t value = 0;
  std::string wide;
  py::object exact;  // the int itself
  bool fits() const { return wide.empty(); }
};

// Any Python int or object with __index__ (bool, NumPy integers, IntEnum), never a
// float. `what()` names the argument in the TypeError, e.g. "rank"; it runs only on error.
template <class What>
int_arg to_int(py::handle v, What&& what) {
  PyObject* p = v.ptr();
  if (PyLong_CheckExact(p)) {  // the common case, without a new reference
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(p, &overflow);
    if (overflow == 0) return {static_cast<rank_t>(value), {}, {}};
  }
  if (PyFloat_Check(p) || !PyIndex_Check(p)) {
    throw py::type_error(std::string(what()) + " must be an integer, got " + text_of(v) + " (" +
                         Py_TYPE(p)->tp_name + ")");
  }
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(p));  // no recursion
  if (!i) throw py::error_already_set();
  if (!PyLong_CheckExact(i.ptr())) {  // Python 3.9 returns int subclasses (IntEnum) as they are
    i = py::reinterpret_steal<py::object>(PyNumber_Long(i.ptr()));
    if (!i) throw py::error_already_set();
  }
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow == 0) {
    if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
    return {static_cast<rank_t>(value), {}, i};
  }
  return {overflow, py::str(i).cast<std::string>(), i};
}

rank_t rank_arg(py::handle v, const topology& t) {
  const int_arg r = to_int(v, [] { return "rank"; });
  if (!r.fits()) proctopo::detail::throw_rank_out_of_range(r.wide, t.world_size());
  return r.value;
}

rank_t coord_arg(py::handle v, const topology& t, std::size_t axis) {
  const std::string& name = t.axes()[axis];
  const int_arg c = to_int(v, [&] { return "the coordinate for axis " + quote(name); });
  if (!c.fits()) proctopo::detail::throw_coordinate_out_of_range(c.wide, name, t.dims()[axis]);
  return c.value;
}

rank_t size_arg(py::handle v, const std::string& what) {
  const int_arg n = to_int(v, [&] { return what; });
  if (!n.fits()) proctopo::detail::throw_too_large(what, n.wide);
  return n.value;
}

// A str's UTF-8 as a view (valid while the str lives); a str that has no UTF-8 form (a lone
// surrogate, as os.fsdecode makes of undecodable bytes) is refused by name.
std::string_view utf8_view(py::handle s, const std::string& what) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    throw std::invalid_argument(what + " " + text_of(s) + " is not valid text: it holds a lone surrogate, which has no UTF-8 form");
  }
  return {data, static_cast<std::size_t>(size)};
}

// An axis name as a view of the str's UTF-8 (valid while the str lives).
std::string_view name_view(py::handle key) {
  if (!PyUnicode_Check(key.ptr())) throw py::type_error("axis names must be str, got " + text_of(key));
  return utf8_view(key, "the axis name");
}

// The name of axis i.
std::string axis_name_arg(py::handle item, std::size_t i) {
  if (!py::isinstance<py::str>(item)) {
    throw py::type_error("axis " + std::to_string(i) + " must be named by a str, got " + text_of(item) + " (" +
                         Py_TYPE(item.ptr())->tp_name + ")");
  }
  return std::string(utf8_view(item, "axis " + std::to_string(i) + " name"));
}

// A list of names (not a str, which would iterate by character).
std::vector<std::string> names_arg(py::handle v, const char* what) {
  if (py::isinstance<py::str>(v) || py::isinstance<py::bytes>(v) || !py::isinstance<py::iterable>(v)) {
    throw py::type_error(std::string(what) + " must be a list of axis names, got " + text_of(v));
  }
  std::vector<std::string> out;
  for (py::handle item : v) out.push_back(axis_name_arg(item, out.size()));
  return out;
}

// One axis name or a list of them.
std::vector<std::size_t> axes_arg(const topology& t, py::handle v) {
  if (py::isinstance<py::str>(v)) return {t.axis_index(name_view(v))};
  if (py::isinstance<py::bytes>(v) || !py::isinstance<py::iterable>(v)) {
    throw py::type_error("axes must be an axis name or a list of axis names, got " + text_of(v));
  }
  std::vector<std::string> names;
  for (py::handle item : v) {
    if (!py::isinstance<py::str>(item)) {
      throw py::type_error("axes must be an axis name or a list of axis names, got " + text_of(v));
    }
    names.emplace_back(name_view(item));
  }
  return t.axis_indices(names);
}

std::string text_arg(py::handle v, const char* what) {
  if (!py::isinstance<py::str>(v)) throw py::type_error(std::string(what) + " must be a str, got " + text_of(v));
  return std::string(utf8_view(v, what));
}


std::string name_of(py::handle key) { return std::string(name_view(key)); }

// An integer NumPy array (any integer dtype; an empty float array is taken as empty).
// `bad` reports a uint64 value past 2**63 - 1 at flat index i.
template <class Bad>
py::array_t<rank_t, py::array::c_style> int_array_arg(py::handle values, const char* what, Bad&& bad) {
  py::array arr = py::module_::import("numpy").attr("asarray")(values);
  const char kind = arr.dtype().kind();
  if (arr.size() == 0 && kind == 'f') arr = arr.attr("astype")("int64");
  else if (kind != 'i' && kind != 'u') {
    throw py::type_error(std::string(what) + " must hold integers, got dtype " +
                         py::str(arr.dtype()).cast<std::string>());
  }
  if (kind == 'u' && arr.itemsize() == 8 && arr.size() > 0) {
    py::object flat = arr.attr("ravel")();
    const auto big = flat.attr("argmax")().cast<py::ssize_t>();
    py::object top = flat[py::int_(big)];
    if (top.cast<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) bad(big, py::str(top).cast<std::string>());
  }
  // A private copy: the core reads it twice with the GIL released (a fast pass, then a
  // checking one), and another thread must not change it in between.
  return py::array_t<rank_t, py::array::c_style>::ensure(arr.attr("astype")("int64", "order"_a = "C", "copy"_a = true));
}

// ---------------------------------------------------------------- methods

// `self` of a method. An object made by Topology.__new__ without __init__ holds no
// topology at all: it must raise, never be read.
const topology& self_of(py::handle self) {
  if (!py::isinstance<topology>(self)) {
    throw py::type_error("expected a proctopo._core.Topology, got " + text_of(self));
  }
  const topology* t = proctopo_binding::held_topology(self.ptr());
  if (t == nullptr) {
    throw py::type_error("this proctopo._core.Topology was never initialised; build one with Topology(axes, dims)");
  }
  return *t;
}

// A method: every binding takes `self` as a handle and checks it once, here.
template <class R, class... A>
auto method(R (*f)(const topology&, A...)) {
  return [f](py::handle self, A... a) -> R { return f(self_of(self), std::forward<A>(a)...); };
}

// ---------------------------------------------------------------- queries

py::tuple coord_of(const topology& t, py::handle rank) {
  constexpr std::size_t small = 16;
  rank_t stack[small];
  std::vector<rank_t> heap(t.ndim() > small ? t.ndim() : 0);
  rank_t* c = t.ndim() > small ? heap.data() : stack;
  t.coord_of(rank_arg(rank, t), c);
  PyObject* out = proctopo_binding::int_tuple(&PyTuple_Type, c, t.ndim());
  if (out == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::tuple>(out);
}

// get_rank(**kwargs): one coordinate per axis, by name.
rank_t rank_of_kwargs(const topology& t, const py::dict& kwargs) {
  const std::size_t n = t.ndim();
  constexpr std::size_t small = 16;
  rank_t coord_small[small];
  bool seen_small[small] = {};
  std::vector<rank_t> coord_heap(n > small ? n : 0);
  std::unique_ptr<bool[]> seen_heap(n > small ? new bool[n]() : nullptr);
  rank_t* coord = n > small ? coord_heap.data() : coord_small;
  bool* seen = n > small ? seen_heap.get() : seen_small;
  std::size_t count = 0;
  for (const auto& item : kwargs) {
    const std::size_t i = t.axis_index(name_view(item.first));
    coord[i] = coord_arg(item.second, t, i);
    seen[i] = true;
    ++count;
  }
  if (count != n) {
    std::string missing;
    for (std::size_t i = 0; i < n; ++i) {
      if (!seen[i]) missing += (missing.empty() ? "" : ", ") + quote(t.axes()[i]);
    }
    throw std::invalid_argument("get_rank() needs one coordinate for every axis; missing " + missing +
                                "; use filter_match() for a partial coordinate");
  }
  return t.rank_of(static_cast<const rank_t*>(coord));
}

// The number of ranks a result will hold, refused (ValueError) before any allocation when
// its bytes cannot be addressed; a result that merely does not fit gets MemoryError.
std::size_t result_size(rank_t count) {
  constexpr rank_t most = PTRDIFF_MAX / static_cast<rank_t>(sizeof(rank_t));
  if (count > most) {
    throw std::length_error("a result of " + std::to_string(count) + " ranks is past what memory can address (" +
                            std::to_string(most) + " ranks); ask for a part of it (e.g. group_of, filter_match)");
  }
  return static_cast<std::size_t>(count);
}

// filter_match(**kwargs): a value outside its axis (however wide) matches nothing.
py::list match_kwargs(const topology& t, const py::dict& kwargs) {
  std::vector<rank_t> partial(t.ndim(), proctopo::any);
  bool empty = false;
  for (const auto& item : kwargs) {
    const std::size_t i = t.axis_index(name_view(item.first));
    const int_arg v = to_int(item.second, [&] { return "the value for axis " + quote(t.axes()[i]); });
    if (!v.fits() || v.value < 0 || v.value >= t.dims()[i]) empty = true;
    partial[i] = v.value;
  }
  if (empty) return py::list();
  std::vector<rank_t> out(result_size(t.match_count(partial.data())));
  t.match(partial.data(), out.data());
  return py::cast(out);
}

py::array_t<rank_t> group_table(const topology& t, py::handle axes_in) {
  const auto axes = axes_arg(t, axes_in);
  const auto shape = t.group_table_shape(axes);
  result_size(t.world_size());
  py::array_t<rank_t> out({shape.num_groups, shape.group_size});
  rank_t* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    t.group_table(axes, data);
  }
  return out;
}

py::array_t<rank_t> group_of(const topology& t, py::handle rank, py::handle axes_in) {
  const rank_t r = rank_arg(rank, t);
  const auto axes = axes_arg(t, axes_in);
  py::array_t<rank_t> out(static_cast<py::ssize_t>(result_size(t.group_table_shape(axes).group_size)));
  t.group_of(r, axes, out.mutable_data());
  return out;
}

std::vector<rank_t> group_head(const topology& t, py::handle rank, py::handle axes, py::handle count) {
  const rank_t r = rank_arg(rank, t);
  const auto a = axes_arg(t, axes);
  const int_arg n = to_int(count, [] { return "count"; });
  if (n.fits()) return t.group_head(r, a, n.value);
  t.group_head(r, a, 0);  // the rank's rule and the axes' first
  if (n.value < 0) proctopo::detail::throw_negative_count(n.wide);
  return t.group_head(r, a, INT64_MAX);  // past every group
}

rank_t group_size(const topology& t, py::handle axes) { return t.group_table_shape(axes_arg(t, axes)).group_size; }

std::string shape_text(const topology& t, py::handle axes) {
  return axes.is_none() ? t.shape_text() : t.shape_text(axes_arg(t, axes));
}

std::vector<rank_t> group_list(const topology& t, py::handle rank, py::handle axes) {
  const rank_t r = rank_arg(rank, t);
  const auto a = axes_arg(t, axes);
  std::vector<rank_t> out(result_size(t.group_table_shape(a).group_size));
  t.group_of(r, a, out.data());
  return out;
}

std::pair<rank_t, rank_t> group_index(const topology& t, py::handle rank, py::handle axes) {
  const rank_t r = rank_arg(rank, t);
  return t.group_index(r, axes_arg(t, axes));
}

rank_t shift(const topology& t, py::handle rank, py::handle axis, py::handle delta, bool periodic) {
  const rank_t r = rank_arg(rank, t);
  const std::size_t a = t.axis_index(name_view(axis));
  const int_arg d = to_int(delta, [] { return "delta"; });
  if (d.fits()) return t.shift(r, a, d.value, periodic);
  // Wider than 64 bits: past either edge, or, wrapping, only the exact remainder matters.
  if (!periodic) return t.shift(r, a, d.value > 0 ? INT64_MAX : -INT64_MAX, false);
  const auto rest = py::reinterpret_steal<py::object>(PyNumber_Remainder(d.exact.ptr(), py::int_(t.dims()[a]).ptr()));
  if (!rest) throw py::error_already_set();
  return t.shift(r, a, rest.cast<rank_t>(), true);
}

std::string rank_repr(const topology& t, py::handle rank, py::handle omit_in, py::handle inner,
                      py::handle outer) {
  std::vector<std::string> omit;
  for (py::handle name : omit_in) omit.push_back(name_of(name));
  return t.rank_repr(rank_arg(rank, t), omit, text_arg(inner, "inner_sep"), text_arg(outer, "outer_sep"));
}

py::array_t<rank_t> ranks(const topology& t, py::handle values) {
  const auto d = static_cast<py::ssize_t>(t.ndim());
  const auto coords = int_array_arg(values, "coords", [&](py::ssize_t i, const std::string& text) {
    const auto axis = static_cast<std::size_t>(i % (d > 0 ? d : 1));
    proctopo::detail::throw_coordinate_out_of_range(text, t.axes()[axis], t.dims()[axis]);
  });
  if (coords.ndim() != 2 || coords.shape(1) != d) {
    std::string shape;
    for (py::ssize_t k = 0; k < coords.ndim(); ++k) shape += (k ? ", " : "") + std::to_string(coords.shape(k));
    if (coords.ndim() == 1) shape += ",";
    throw std::invalid_argument("coords must have shape (n, " + std::to_string(d) +
                                "), one column per axis, got shape (" + shape + ")");
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

py::array_t<rank_t> coords(const topology& t, py::handle values) {
  const auto rk = int_array_arg(values, "ranks", [&](py::ssize_t, const std::string& text) {
    proctopo::detail::throw_rank_out_of_range(text, t.world_size());
  });
  if (rk.ndim() != 1) {
    throw std::invalid_argument("ranks must be a 1-D array, got " + std::to_string(rk.ndim()) + " dimensions");
  }
  const auto n = static_cast<std::size_t>(rk.shape(0));
  py::array_t<rank_t> out({rk.shape(0), static_cast<py::ssize_t>(t.ndim())});
  const rank_t* in = rk.data();
  rank_t* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    t.coord_of_bulk(in, n, o);
  }
  return out;
}

// Axis sizes as the core takes them: values, and the exact text of those past 64 bits
// (empty when none is). Size i is named after axis i in a TypeError.
struct sizes_arg {
  std::vector<rank_t> dims;
  std::vector<std::string> wide;

  sizes_arg(py::handle dims_in, const std::vector<std::string>& axes) {
    if (py::isinstance<py::str>(dims_in) || py::isinstance<py::bytes>(dims_in) ||
        !py::isinstance<py::iterable>(dims_in)) {
      throw py::type_error("dims must be a list of axis sizes, got " + text_of(dims_in));
    }
    bool any_wide = false;
    for (py::handle item : dims_in) {
      const std::size_t i = dims.size();
      const int_arg d = to_int(item, [&] {
        return i < axes.size() ? "the size of axis " + quote(axes[i]) : "size " + std::to_string(i);
      });
      dims.push_back(d.value);
      wide.push_back(d.wide);
      any_wide |= !d.fits();
    }
    if (!any_wide) wide.clear();
  }
};

// A mapping of axis names to sizes: the names, and the sizes not yet converted.
struct named_sizes {
  py::dict map;  // holds the sizes
  std::vector<std::string> names;
  std::vector<py::handle> sizes;

  explicit named_sizes(py::handle v) {
    if (!PyDict_Check(v.ptr()) && (!PyMapping_Check(v.ptr()) || !py::hasattr(v, "items"))) {
      throw py::type_error("sizes must be a mapping of axis names to sizes, got " + text_of(v));
    }
    map = py::dict(py::reinterpret_borrow<py::object>(v));
    for (const auto& item : map) {
      names.push_back(name_of(item.first));
      sizes.push_back(item.second);
    }
  }
};

topology make_topology(py::handle axes_in, py::handle dims_in) {
  std::vector<std::string> axes = names_arg(axes_in, "axes");
  sizes_arg s(dims_in, axes);
  return topology(std::move(axes), std::move(s.dims), s.wide);
}

// Topology.from_order(order, sizes, rename): sizes maps names of the order to sizes; rename,
// when not None, renames axes by its get(name, name). The new names and the sizes are
// converted after the core has checked the order and the names given sizes.
topology from_order(py::handle order, py::handle sizes_in, py::handle rename) {
  const std::string text = text_arg(order, "order");
  const named_sizes given(sizes_in);
  return topology::from_order_with(
      text, given.names,
      [&](std::size_t i, std::string& axis) {
        if (!rename.is_none()) axis = axis_name_arg(rename.attr("get")(axis, axis), i);
      },
      [&](std::size_t k, rank_t& size, std::string& wide) {
        int_arg d = to_int(given.sizes[k], [&] { return "the size of axis " + quote(given.names[k]); });
        size = d.value;
        wide = std::move(d.wide);
      });
}

std::vector<std::string> axes_of(const topology& t) { return t.axes(); }
std::vector<rank_t> dims_of(const topology& t) { return t.dims(); }
std::vector<rank_t> strides_of(const topology& t) { return t.strides(); }
rank_t world_of(const topology& t) { return t.world_size(); }
std::size_t ndim_of(const topology& t) { return t.ndim(); }
std::string describe(const topology& t) { return t.describe(); }
rank_t dim(const topology& t, py::handle name) { return t.dim(name_view(name)); }

py::tuple state(const topology& t) {
  return py::make_tuple(py::tuple(py::cast(t.axes())), py::tuple(py::cast(t.dims())));
}

py::object equals(const topology& a, py::handle b) {
  if (!py::isinstance<topology>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
  return py::bool_(a == self_of(b));
}

py::ssize_t hash_of(const topology& t) { return py::hash(state(t)); }

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

  py::class_<topology>(m, "Topology")
      .def(py::init(&make_topology), "axes"_a, "dims"_a)
      .def_property_readonly("axes", method(&axes_of))
      .def_property_readonly("dims", method(&dims_of))
      .def_property_readonly("strides", method(&strides_of))
      .def_property_readonly("world_size", method(&world_of))
      .def_property_readonly("ndim", method(&ndim_of))
      .def("dim", method(&dim), "name"_a)
      .def("axis_indices", method(&axes_arg), "axes"_a)
      .def("rank_of_kwargs", method(&rank_of_kwargs), "kwargs"_a)
      .def("coord_of", method(&coord_of), "rank"_a)
      .def("match_kwargs", method(&match_kwargs), "kwargs"_a)
      .def("ranks", method(&ranks), "coords"_a)
      .def("coords", method(&coords), "ranks"_a)
      .def("groups", method(&group_table), "axes"_a)
      .def("group_of", method(&group_of), "rank"_a, "axes"_a)
      .def("group_list", method(&group_list), "rank"_a, "axes"_a)
      .def("group_head", method(&group_head), "rank"_a, "axes"_a, "count"_a)
      .def("group_size", method(&group_size), "axes"_a)
      .def("group_index", method(&group_index), "rank"_a, "axes"_a)
      .def("shift", method(&shift), "rank"_a, "axis"_a, "delta"_a, "periodic"_a)
      .def("rank_repr", method(&rank_repr), "rank"_a, "omit"_a, "inner_sep"_a, "outer_sep"_a)
      .def("shape_text", method(&shape_text), "axes"_a = py::none())
      .def("describe", method(&describe))
      .def_static("from_order", &from_order, "order"_a, "sizes"_a, "rename"_a = py::none())
      .def("__eq__", method(&equals))
      .def("__hash__", method(&hash_of))
      .def(py::pickle(method(&state), [](const py::tuple& s) {
        if (s.size() != 2) throw py::type_error("a Topology state is (axes, dims), got " + text_of(s));
        return make_topology(s[0], s[1]);
      }));

  proctopo_binding::add_fast_methods(m);

  m.def(
      "prime_factors",
      [](py::handle n) {
        const rank_t value = size_arg(n, "n");
        py::gil_scoped_release release;  // pure arithmetic
        return proctopo::prime_factors(value);
      },
      "n"_a);
  m.def(
      "dims_create",
      [](py::handle n, py::handle dims) {
        if (py::isinstance<py::str>(dims) || py::isinstance<py::bytes>(dims) || !py::isinstance<py::iterable>(dims)) {
          throw py::type_error("dims must be a list of sizes (0 for a free entry), got " + text_of(dims));
        }
        std::vector<rank_t> entries;
        for (py::handle d : dims) entries.push_back(size_arg(d, "dims[" + std::to_string(entries.size()) + "]"));
        return proctopo::dims_create(size_arg(n, "n"), entries);
      },
      "n"_a, "dims"_a);
  m.def(
      "parse_order", [](py::handle order) { return proctopo::parse_order(text_arg(order, "order")); }, "order"_a);
  m.def(
      "check_axis_names", [](py::handle axes) { proctopo::check_axis_names(names_arg(axes, "axes")); }, "axes"_a);
  m.def(
      "check_sizes",
      [](py::handle sizes_in) {
        const named_sizes given(sizes_in);
        const sizes_arg s(given.map.attr("values")(), given.names);
        proctopo::check_sizes(given.names, s.dims, s.wide);
      },
      "sizes"_a);
  m.def(
      "check_rank",
      [](py::handle rank, py::handle world_size) {
        const rank_t world = size_arg(world_size, "world_size");
        const int_arg r = to_int(rank, [] { return "rank"; });
        if (r.fits()) return proctopo::check_rank(r.value, world);
        proctopo::check_rank(0, world);  // the world's own rule first
        proctopo::detail::throw_rank_out_of_range(r.wide, world);
      },
      "rank"_a, "world_size"_a);
}
