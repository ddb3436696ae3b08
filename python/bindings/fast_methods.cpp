// Fast entries for the hottest methods of proctopo.ProcessTopology (get_coord, get_rank,
// filter_match, get_axis_list, get_axis_comm_lists, group_list).
//
// Each is a small callable type with vectorcall, installed on the Python class in place
// of the method it speeds up (kept as `__wrapped__`). It reads the class's `_core` and
// `ProcessCoord` slots directly, takes keyword names without building a dict, and builds
// its result (a ProcessCoord, a list of ints) in one pass. It handles only the common
// shape of a call: exact ints, known axis names. The values come from the core's own
// functions (its rank and coordinate kernels, its match and group enumeration), and so do
// the rules: when the core refuses a call, or the call has any other shape, it is handed to
// the wrapped Python method, so errors and their messages stay the ones the façade and the
// core give; the fast path never raises a message of its own.
//
// The entries live in one table (`entries` below): the names installed on the class, the
// names the module lists and the dispatch all come from it.
//
// Reading the `_core` object's topology without pybind11's type lookup uses pybind11's
// private instance layout (detail::instance, value_and_holder), in held_topology() only.
// The versions it was checked against are the range below, the same as pyproject.toml's
// build requirement; check_pybind11_layout() proves it at import and in the tests.

#include "fast_methods.hpp"

#include <structmember.h>  // PyMemberDef (public in descrobject.h only from Python 3.12)

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// The pybind11 versions whose private instance layout held_topology() reads (pyproject.toml's
// build requirement says the same). Another version may lay instances out differently: check
// held_topology() against it (tests/test_topology_fast.py), then widen both bounds.
#define PROCTOPO_PYBIND11_MIN_HEX 0x020C0000  // 2.12
#define PROCTOPO_PYBIND11_END_HEX 0x03020000  // 3.2, excluded
#define PROCTOPO_PYBIND11_HEX ((PYBIND11_VERSION_MAJOR << 24) | (PYBIND11_VERSION_MINOR << 16))
static_assert(PROCTOPO_PYBIND11_HEX >= PROCTOPO_PYBIND11_MIN_HEX && PROCTOPO_PYBIND11_HEX < PROCTOPO_PYBIND11_END_HEX,
              "proctopo reads pybind11's private instance layout, checked for pybind11 2.12 to 3.1 only: "
              "build with a pybind11 in that range, or check held_topology() against this one and widen "
              "the bounds here and in pyproject.toml");

using namespace pybind11::literals;

namespace proctopo_binding {

const proctopo::topology* held_topology(PyObject* obj) noexcept {
  auto* inst = reinterpret_cast<pybind11::detail::instance*>(obj);
  const auto vh = inst->get_value_and_holder();  // the first (and only) C++ base: no type lookup
  if (!vh.holder_constructed()) return nullptr;
  return vh.value_ptr<proctopo::topology>();
}

namespace {

PyObject* new_ref(PyObject* o) {  // Py_NewRef, which Python 3.9 lacks
  Py_INCREF(o);
  return o;
}

struct fast_method;

/// One fast entry: the call's arguments after `self`'s topology is found. Returns nullptr
/// with no error set to mean "take the slow way"; may throw (the slow way then answers).
using handler = PyObject* (*)(const fast_method* m, const proctopo::topology& t, PyObject* self,
                              PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames);

struct fast_method {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  handler fn;
  PyTypeObject* owner;       // ProcessTopology
  Py_ssize_t core_offset;    // of its `_core` slot
  Py_ssize_t coord_offset;   // of its `ProcessCoord` slot
  PyObject* wrapped;         // the Python method: every call the fast path does not take
  PyObject* name;
  PyObject* qualname;
  PyObject* doc;
};

PyTypeObject* core_type = nullptr;  // proctopo._core.Topology

constexpr std::size_t small = 16;  // axes handled on the stack

// The topology held by `self`, or nullptr when `self` is not an initialised ProcessTopology.
const proctopo::topology* topology_of(const fast_method* m, PyObject* self) {
  if (!PyObject_TypeCheck(self, m->owner)) return nullptr;
  PyObject* core = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + m->core_offset);
  if (core == nullptr || Py_TYPE(core) != core_type) return nullptr;
  return held_topology(core);
}

// An exact int that fits in 64 bits (bool, subclasses and wide ints go the slow way).
bool exact_int(PyObject* v, proctopo::rank_t& out) {
  if (!PyLong_CheckExact(v)) return false;
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (overflow != 0 || (value == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  out = static_cast<proctopo::rank_t>(value);
  return true;
}

// Position of the axis named by `key`, or -1 (not a str, or no such axis).
std::ptrdiff_t axis_of(const proctopo::topology& t, PyObject* key) {
  if (!PyUnicode_CheckExact(key)) return -1;
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(key, &size);
  if (data == nullptr) {
    PyErr_Clear();
    return -1;
  }
  return t.find_axis(std::string_view(data, static_cast<std::size_t>(size)));
}

// Fills `out`, a new list or tuple of n slots (or nullptr), with the ints `values`.
template <class Set>
PyObject* fill_ints(PyObject* out, const proctopo::rank_t* values, std::size_t n, Set set) {
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    PyObject* v = PyLong_FromLongLong(values[i]);
    if (v == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    set(out, static_cast<Py_ssize_t>(i), v);
  }
  return out;
}

PyObject* int_list(const proctopo::rank_t* values, std::size_t n) {
  return fill_ints(PyList_New(static_cast<Py_ssize_t>(n)), values, n,
                   [](PyObject* o, Py_ssize_t i, PyObject* v) { PyList_SET_ITEM(o, i, v); });
}

}  // namespace

PyObject* int_tuple(PyTypeObject* type, const proctopo::rank_t* values, std::size_t n) {
  // A tuple subclass such as a namedtuple is allocated as tuple.__new__ makes one (tp_alloc).
  const auto size = static_cast<Py_ssize_t>(n);
  return fill_ints(type == &PyTuple_Type ? PyTuple_New(size) : type->tp_alloc(type, size), values, n,
                   [](PyObject* o, Py_ssize_t i, PyObject* v) { PyTuple_SET_ITEM(o, i, v); });
}

namespace {

// ---------------------------------------------------------------- the entries

// get_coord(rank): the core's coordinate kernel (which refuses a rank out of range).
PyObject* get_coord(const fast_method* m, const proctopo::topology& t, PyObject* self, PyObject* const* args,
                    Py_ssize_t nargs, PyObject* kwnames) {
  PyObject* rank_obj = nullptr;
  if (nargs == 2 && kwnames == nullptr) {
    rank_obj = args[1];
  } else if (nargs == 1 && kwnames != nullptr && PyTuple_GET_SIZE(kwnames) == 1 &&
             PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "rank") == 0) {
    rank_obj = args[1];
  } else {
    return nullptr;
  }
  proctopo::rank_t rank = 0;
  const std::size_t n = t.ndim();
  if (!exact_int(rank_obj, rank) || n > small) return nullptr;
  PyObject* cls = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + m->coord_offset);
  if (cls == nullptr || !PyType_Check(cls) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls), &PyTuple_Type)) {
    return nullptr;
  }
  proctopo::rank_t coord[small];
  t.coord_of(rank, coord);
  return int_tuple(reinterpret_cast<PyTypeObject*>(cls), coord, n);
}

// get_rank(**coord): one keyword per axis, through the core's rank kernel (which refuses a
// coordinate out of range).
PyObject* get_rank(const fast_method*, const proctopo::topology& t, PyObject*, PyObject* const* args,
                   Py_ssize_t nargs, PyObject* kwnames) {
  const std::size_t n = t.ndim();
  if (nargs != 1 || n > small) return nullptr;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  if (static_cast<std::size_t>(nkw) != n) return nullptr;
  proctopo::rank_t coord[small];
  bool seen[small] = {};
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    const std::ptrdiff_t i = axis_of(t, PyTuple_GET_ITEM(kwnames, k));
    if (i < 0 || seen[i]) return nullptr;
    if (!exact_int(args[1 + k], coord[i])) return nullptr;
    seen[i] = true;
  }
  return PyLong_FromLongLong(t.rank_of(static_cast<const proctopo::rank_t*>(coord)));
}

// filter_match(**kw) and get_axis_list(axis, idx): the core's match over a partial
// coordinate (a value outside its axis matches nothing, there as in the slow way).
PyObject* match(const proctopo::topology& t, const std::ptrdiff_t* axes, PyObject* const* values, Py_ssize_t count) {
  std::vector<proctopo::rank_t> partial(t.ndim(), proctopo::any);
  for (Py_ssize_t k = 0; k < count; ++k) {
    const std::ptrdiff_t i = axes[k];
    if (i < 0) return nullptr;
    const auto a = static_cast<std::size_t>(i);
    proctopo::rank_t v = 0;
    // A repeated axis, or the one value that spells the core's wildcard: the slow way.
    if (partial[a] != proctopo::any || !exact_int(values[k], v) || v == proctopo::any) return nullptr;
    partial[a] = v;
  }
  std::vector<proctopo::rank_t> out(static_cast<std::size_t>(t.match_count(partial.data())));
  t.match(partial.data(), out.data());
  return int_list(out.data(), out.size());
}

PyObject* filter_match(const fast_method*, const proctopo::topology& t, PyObject*, PyObject* const* args,
                       Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 1) return nullptr;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  if (static_cast<std::size_t>(nkw) > small) return nullptr;
  std::ptrdiff_t axes[small];
  for (Py_ssize_t k = 0; k < nkw; ++k) axes[k] = axis_of(t, PyTuple_GET_ITEM(kwnames, k));
  return match(t, axes, args + 1, nkw);
}

PyObject* get_axis_list(const fast_method*, const proctopo::topology& t, PyObject*, PyObject* const* args,
                        Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 3 || kwnames != nullptr) return nullptr;
  const std::ptrdiff_t axis = axis_of(t, args[1]);
  return match(t, &axis, args + 2, 1);
}

// get_axis_comm_lists(axis): the core's group table along one axis, one list per row.
PyObject* get_axis_comm_lists(const fast_method*, const proctopo::topology& t, PyObject*, PyObject* const* args,
                              Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 2 || kwnames != nullptr) return nullptr;
  const std::ptrdiff_t axis = axis_of(t, args[1]);
  if (axis < 0) return nullptr;
  const std::vector<std::size_t> axes{static_cast<std::size_t>(axis)};
  const proctopo::group_shape shape = t.group_table_shape(axes);
  const std::vector<proctopo::rank_t> table = t.group_table(axes);
  const auto size = static_cast<std::size_t>(shape.group_size);
  PyObject* rows = PyList_New(static_cast<Py_ssize_t>(shape.num_groups));
  if (rows == nullptr) return nullptr;
  for (Py_ssize_t g = 0; g < shape.num_groups; ++g) {
    PyObject* list = int_list(table.data() + static_cast<std::size_t>(g) * size, size);
    if (list == nullptr) {
      Py_DECREF(rows);
      return nullptr;
    }
    PyList_SET_ITEM(rows, g, list);
  }
  return rows;
}

// group_list(rank, axes): the core's group of a rank (which refuses a rank out of range
// and a repeated axis).
PyObject* group_list(const fast_method*, const proctopo::topology& t, PyObject*, PyObject* const* args,
                     Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 3 || kwnames != nullptr) return nullptr;
  proctopo::rank_t rank = 0;
  if (!exact_int(args[1], rank)) return nullptr;
  std::vector<std::size_t> axes;
  PyObject* spec = args[2];
  if (PyUnicode_CheckExact(spec)) {
    const std::ptrdiff_t i = axis_of(t, spec);
    if (i < 0) return nullptr;
    axes.push_back(static_cast<std::size_t>(i));
  } else if (PyList_CheckExact(spec) || PyTuple_CheckExact(spec)) {
    const Py_ssize_t k = PySequence_Fast_GET_SIZE(spec);
    PyObject** items = PySequence_Fast_ITEMS(spec);
    for (Py_ssize_t j = 0; j < k; ++j) {
      const std::ptrdiff_t i = axis_of(t, items[j]);
      if (i < 0) return nullptr;
      axes.push_back(static_cast<std::size_t>(i));
    }
  } else {
    return nullptr;
  }
  const std::vector<proctopo::rank_t> out = t.group_of(rank, axes);
  return int_list(out.data(), out.size());
}

/// The one table of fast entries: each name is the ProcessTopology method it stands for.
struct entry {
  const char* name;
  handler fn;
};
constexpr entry entries[] = {
    {"get_coord", get_coord},         {"get_rank", get_rank},
    {"filter_match", filter_match},   {"get_axis_list", get_axis_list},
    {"get_axis_comm_lists", get_axis_comm_lists}, {"group_list", group_list},
};

// ---------------------------------------------------------------- the type

PyObject* call(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* m = reinterpret_cast<fast_method*>(callable);
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs >= 1) {
    PyObject* self = args[0];
    if (const proctopo::topology* t = topology_of(m, self)) {
      PyObject* out = nullptr;
      try {
        out = m->fn(m, *t, self, args, nargs, kwnames);
      } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
      } catch (...) {  // the core refused the call: let the slow way say what is wrong
        out = nullptr;
      }
      if (out != nullptr || PyErr_Occurred()) return out;
    }
  }
  return PyObject_Vectorcall(m->wrapped, args, nargsf, kwnames);
}

PyObject* descr_get(PyObject* self, PyObject* obj, PyObject* /*type*/) {
  if (obj == nullptr || obj == Py_None) {
    Py_INCREF(self);
    return self;
  }
  return PyMethod_New(self, obj);
}

void dealloc(PyObject* self) {
  auto* m = reinterpret_cast<fast_method*>(self);
  PyObject_GC_UnTrack(self);
  Py_CLEAR(m->owner);
  Py_CLEAR(m->wrapped);
  Py_CLEAR(m->name);
  Py_CLEAR(m->qualname);
  Py_CLEAR(m->doc);
  Py_TYPE(self)->tp_free(self);
}

int traverse(PyObject* self, visitproc visit, void* arg) {
  auto* m = reinterpret_cast<fast_method*>(self);
  Py_VISIT(reinterpret_cast<PyObject*>(m->owner));
  Py_VISIT(m->wrapped);
  return 0;
}

PyObject* get_wrapped(PyObject* self, void*) { return new_ref(reinterpret_cast<fast_method*>(self)->wrapped); }
PyObject* get_name(PyObject* self, void*) { return new_ref(reinterpret_cast<fast_method*>(self)->name); }
PyObject* get_qualname(PyObject* self, void*) { return new_ref(reinterpret_cast<fast_method*>(self)->qualname); }
PyObject* get_doc(PyObject* self, void*) { return new_ref(reinterpret_cast<fast_method*>(self)->doc); }
PyObject* get_objclass(PyObject* self, void*) {
  return new_ref(reinterpret_cast<PyObject*>(reinterpret_cast<fast_method*>(self)->owner));
}
PyObject* get_module(PyObject* self, void*) {
  return PyObject_GetAttrString(reinterpret_cast<fast_method*>(self)->wrapped, "__module__");
}

PyGetSetDef getset[] = {
    {"__wrapped__", get_wrapped, nullptr, "The Python method this entry speeds up.", nullptr},
    {"__name__", get_name, nullptr, nullptr, nullptr},
    {"__qualname__", get_qualname, nullptr, nullptr, nullptr},
    {"__doc__", get_doc, nullptr, nullptr, nullptr},
    {"__objclass__", get_objclass, nullptr, nullptr, nullptr},
    {"__module__", get_module, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyObject* repr(PyObject* self) {
  return PyUnicode_FromFormat("<fast method %U of %s>", reinterpret_cast<fast_method*>(self)->qualname,
                              reinterpret_cast<fast_method*>(self)->owner->tp_name);
}

PyTypeObject fast_method_type{};  // a static type, filled in once by add_fast_methods

void fill_type(PyTypeObject& t) {
  Py_SET_REFCNT(reinterpret_cast<PyObject*>(&t), 1);
  t.tp_name = "proctopo._core.fast_method";
  t.tp_basicsize = sizeof(fast_method);
  t.tp_dealloc = dealloc;
  t.tp_vectorcall_offset = offsetof(fast_method, vectorcall);
  t.tp_repr = repr;
  t.tp_call = PyVectorcall_Call;
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR;
  t.tp_doc = "A fast entry for a ProcessTopology method; the Python method is its __wrapped__.";
  t.tp_traverse = traverse;
  t.tp_getset = getset;
  t.tp_descr_get = descr_get;
}

Py_ssize_t slot_offset(PyTypeObject* owner, const char* name) {
  pybind11::object descr = pybind11::reinterpret_borrow<pybind11::dict>(owner->tp_dict)[name];
  if (Py_TYPE(descr.ptr()) != &PyMemberDescr_Type) {
    throw pybind11::type_error(std::string(owner->tp_name) + "." + name + " is not a __slots__ entry");
  }
  return reinterpret_cast<PyMemberDescrObject*>(descr.ptr())->d_member->offset;
}

// A fast entry for `wrapped`, the method of `owner` that it stands for.
pybind11::object make_entry(handler fn, pybind11::handle owner, pybind11::handle wrapped) {
  auto* type = reinterpret_cast<PyTypeObject*>(owner.ptr());
  const Py_ssize_t core_offset = slot_offset(type, "_core");
  const Py_ssize_t coord_offset = slot_offset(type, "ProcessCoord");
  pybind11::object name = wrapped.attr("__name__");
  pybind11::object qualname = wrapped.attr("__qualname__");
  pybind11::object doc = wrapped.attr("__doc__");
  auto* f = PyObject_GC_New(fast_method, &fast_method_type);
  if (f == nullptr) throw pybind11::error_already_set();
  f->vectorcall = call;
  f->fn = fn;
  f->owner = reinterpret_cast<PyTypeObject*>(new_ref(owner.ptr()));
  f->core_offset = core_offset;
  f->coord_offset = coord_offset;
  f->name = name.release().ptr();
  f->qualname = qualname.release().ptr();
  f->doc = doc.release().ptr();
  f->wrapped = new_ref(wrapped.ptr());
  PyObject_GC_Track(reinterpret_cast<PyObject*>(f));
  return pybind11::reinterpret_steal<pybind11::object>(reinterpret_cast<PyObject*>(f));
}

// held_topology() against pybind11's public cast, on a topology pybind11 made and on one
// made by __new__ without __init__; returns the pybind11 version it was built with.
std::string check_pybind11_layout() {
  const std::string version = std::to_string(PYBIND11_VERSION_MAJOR) + "." + std::to_string(PYBIND11_VERSION_MINOR) +
                              "." + std::to_string(PYBIND11_VERSION_PATCH);
  const auto fail = [&](const std::string& what) {
    throw std::runtime_error("proctopo._core was built with pybind11 " + version + ", whose instances are not laid out "
                             "as its fast path reads them (" + what + "); build it with a pybind11 that "
                             "pyproject.toml's build requirement admits");
  };
  pybind11::object made = pybind11::cast(proctopo::topology({"a", "b"}, {2, 3}));
  if (Py_TYPE(made.ptr()) != core_type) fail("a Topology is not of the registered type");
  const proctopo::topology* read = held_topology(made.ptr());
  if (read != &made.cast<const proctopo::topology&>()) fail("the topology read is not the one pybind11 holds");
  if (read->world_size() != 6 || read->axes()[1] != "b") fail("the topology read has other values");
  pybind11::object blank = pybind11::handle(reinterpret_cast<PyObject*>(core_type)).attr("__new__")(
      pybind11::handle(reinterpret_cast<PyObject*>(core_type)));
  if (held_topology(blank.ptr()) != nullptr) fail("a Topology never initialised reads as holding one");
  return version;
}

}  // namespace

void add_fast_methods(pybind11::module_& m) {
  core_type = reinterpret_cast<PyTypeObject*>(pybind11::type::of<proctopo::topology>().ptr());
  try {
    check_pybind11_layout();
  } catch (const std::runtime_error& e) {
    throw pybind11::import_error(e.what());
  }
  fill_type(fast_method_type);
  if (PyType_Ready(&fast_method_type) < 0) throw pybind11::error_already_set();
  pybind11::tuple names(sizeof(entries) / sizeof(entries[0]));
  for (std::size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); ++i) names[i] = pybind11::str(entries[i].name);
  m.attr("fast_method_names") = names;
  m.def(
      "install_fast_methods",
      [](pybind11::type owner) {
        pybind11::dict own = pybind11::reinterpret_borrow<pybind11::dict>(
            reinterpret_cast<PyTypeObject*>(owner.ptr())->tp_dict);
        for (const entry& e : entries) {
          pybind11::object method = own[e.name];
          if (Py_TYPE(method.ptr()) == &fast_method_type) {  // installed already: wrap the same method
            method = pybind11::reinterpret_borrow<pybind11::object>(reinterpret_cast<fast_method*>(method.ptr())->wrapped);
          }
          pybind11::setattr(owner, e.name, make_entry(e.fn, owner, method));
        }
      },
      "owner"_a,
      "Replaces each method of `owner` named in fast_method_names (a class with `_core` and `ProcessCoord` "
      "slots) by its fast entry, which keeps the method as `__wrapped__`.");
  m.def("check_pybind11_layout", &check_pybind11_layout,
        "Checks that the fast path reads a Topology as pybind11 holds it; returns pybind11's version.");
}

}  // namespace proctopo_binding
