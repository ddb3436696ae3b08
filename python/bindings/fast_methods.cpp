// Fast entries for the hottest methods of proctopo.ProcessTopology (get_coord, get_rank,
// filter_match, get_axis_list, get_axis_comm_lists, group_list).
//
// Each is a small callable type with vectorcall, installed on the Python class in place
// of the method it speeds up (kept as `__wrapped__`). It reads the class's `_core` and
// `ProcessCoord` slots directly, takes keyword names without building a dict, and builds
// its result (a ProcessCoord, a list of ints) in one pass. It handles only the common
// shape of a call: exact ints in range, known axis names. Anything else, and every
// error, is handed to the wrapped Python method, so errors and their messages stay the
// ones the façade and the core give; the fast path never raises a message of its own.

#include "fast_methods.hpp"

#include <structmember.h>  // PyMemberDef (public in descrobject.h only from Python 3.12)

#include <cstddef>
#include <cstring>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

using namespace pybind11::literals;

namespace proctopo_binding {
namespace {

PyObject* new_ref(PyObject* o) {  // Py_NewRef, which Python 3.9 lacks
  Py_INCREF(o);
  return o;
}

enum class kind : int { get_coord, get_rank, filter_match, get_axis_list, get_axis_comm_lists, group_list };

struct fast_method {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  kind what;
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
  auto* inst = reinterpret_cast<pybind11::detail::instance*>(core);
  auto vh = inst->get_value_and_holder();
  if (!vh.holder_constructed()) return nullptr;
  return vh.value_ptr<proctopo::topology>();
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

PyObject* int_list(const proctopo::rank_t* values, std::size_t n) {
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(n));
  if (list == nullptr) return nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    PyObject* v = PyLong_FromLongLong(values[i]);
    if (v == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), v);
  }
  return list;
}

// ---------------------------------------------------------------- the methods
// Each returns nullptr with no error set to mean "take the slow way".

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
  if (!exact_int(rank_obj, rank) || rank < 0 || rank >= t.world_size() || n > small) return nullptr;
  PyObject* cls = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + m->coord_offset);
  if (cls == nullptr || !PyType_Check(cls) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls), &PyTuple_Type)) {
    return nullptr;
  }
  proctopo::rank_t coord[small];
  t.coord_of(rank, coord);  // in range: cannot throw
  auto* type = reinterpret_cast<PyTypeObject*>(cls);
  PyObject* out = type->tp_alloc(type, static_cast<Py_ssize_t>(n));  // a tuple subclass, as tuple.__new__ makes it
  if (out == nullptr) return nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    PyObject* v = PyLong_FromLongLong(coord[i]);
    if (v == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    PyTuple_SET_ITEM(out, static_cast<Py_ssize_t>(i), v);
  }
  return out;
}

PyObject* get_rank(const proctopo::topology& t, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const std::size_t n = t.ndim();
  if (nargs != 1 || n > small) return nullptr;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  if (static_cast<std::size_t>(nkw) != n) return nullptr;
  proctopo::rank_t coord[small];
  bool seen[small] = {};
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    const std::ptrdiff_t i = axis_of(t, PyTuple_GET_ITEM(kwnames, k));
    if (i < 0 || seen[i]) return nullptr;
    const auto a = static_cast<std::size_t>(i);
    if (!exact_int(args[1 + k], coord[a]) || coord[a] < 0 || coord[a] >= t.dims()[a]) return nullptr;
    seen[a] = true;
  }
  proctopo::rank_t rank = 0;
  for (std::size_t i = 0; i < n; ++i) rank += coord[i] * t.strides()[i];
  return PyLong_FromLongLong(rank);
}

// filter_match(**kw) and get_axis_list(axis, idx): ranks matching a partial coordinate.
PyObject* match(const proctopo::topology& t, const std::ptrdiff_t* axes, PyObject* const* values, Py_ssize_t count) {
  const std::size_t n = t.ndim();
  std::vector<proctopo::rank_t> partial(n, proctopo::any);
  bool empty = false;
  for (Py_ssize_t k = 0; k < count; ++k) {
    const std::ptrdiff_t i = axes[k];
    if (i < 0) return nullptr;
    const auto a = static_cast<std::size_t>(i);
    proctopo::rank_t v = 0;
    if (partial[a] != proctopo::any || !exact_int(values[k], v)) return nullptr;
    if (v < 0 || v >= t.dims()[a]) empty = true;  // matches nothing (as the slow way says)
    partial[a] = v;
  }
  if (empty) return PyList_New(0);
  std::vector<proctopo::rank_t> out(static_cast<std::size_t>(t.match_count(partial.data())));
  t.match(partial.data(), out.data());
  return int_list(out.data(), out.size());
}

PyObject* filter_match(const proctopo::topology& t, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 1) return nullptr;
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  if (static_cast<std::size_t>(nkw) > small) return nullptr;
  std::ptrdiff_t axes[small];
  for (Py_ssize_t k = 0; k < nkw; ++k) axes[k] = axis_of(t, PyTuple_GET_ITEM(kwnames, k));
  return match(t, axes, args + 1, nkw);
}

PyObject* get_axis_list(const proctopo::topology& t, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 3 || kwnames != nullptr) return nullptr;
  const std::ptrdiff_t axis = axis_of(t, args[1]);
  return match(t, &axis, args + 2, 1);
}

// get_axis_comm_lists(axis): row g is bases[g] + offsets, where offsets is the group of
// rank 0 along the axis and bases the group of rank 0 along every other axis; no table.
PyObject* get_axis_comm_lists(const proctopo::topology& t, PyObject* const* args, Py_ssize_t nargs,
                              PyObject* kwnames) {
  if (nargs != 2 || kwnames != nullptr) return nullptr;
  const std::ptrdiff_t axis = axis_of(t, args[1]);
  if (axis < 0) return nullptr;
  std::vector<std::size_t> others;
  for (std::size_t i = 0; i < t.ndim(); ++i) {
    if (i != static_cast<std::size_t>(axis)) others.push_back(i);
  }
  const std::vector<proctopo::rank_t> offsets = t.group_of(0, {static_cast<std::size_t>(axis)});
  const std::vector<proctopo::rank_t> bases = t.group_of(0, others);
  PyObject* rows = PyList_New(static_cast<Py_ssize_t>(bases.size()));
  if (rows == nullptr) return nullptr;
  std::vector<proctopo::rank_t> row(offsets.size());
  for (std::size_t g = 0; g < bases.size(); ++g) {
    for (std::size_t j = 0; j < offsets.size(); ++j) row[j] = bases[g] + offsets[j];
    PyObject* list = int_list(row.data(), row.size());
    if (list == nullptr) {
      Py_DECREF(rows);
      return nullptr;
    }
    PyList_SET_ITEM(rows, static_cast<Py_ssize_t>(g), list);
  }
  return rows;
}

PyObject* group_list(const proctopo::topology& t, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs != 3 || kwnames != nullptr) return nullptr;
  proctopo::rank_t rank = 0;
  if (!exact_int(args[1], rank) || rank < 0 || rank >= t.world_size()) return nullptr;
  std::vector<std::size_t> axes;
  std::vector<bool> seen(t.ndim(), false);
  const auto add = [&](PyObject* name) {
    const std::ptrdiff_t i = axis_of(t, name);
    if (i < 0 || seen[static_cast<std::size_t>(i)]) return false;
    seen[static_cast<std::size_t>(i)] = true;
    axes.push_back(static_cast<std::size_t>(i));
    return true;
  };
  PyObject* spec = args[2];
  if (PyUnicode_CheckExact(spec)) {
    if (!add(spec)) return nullptr;
  } else if (PyList_CheckExact(spec) || PyTuple_CheckExact(spec)) {
    const Py_ssize_t k = PySequence_Fast_GET_SIZE(spec);
    PyObject** items = PySequence_Fast_ITEMS(spec);
    for (Py_ssize_t i = 0; i < k; ++i) {
      if (!add(items[i])) return nullptr;
    }
  } else {
    return nullptr;
  }
  const std::vector<proctopo::rank_t> out = t.group_of(rank, axes);  // checked above: cannot throw
  return int_list(out.data(), out.size());
}

// ---------------------------------------------------------------- the type

PyObject* call(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* m = reinterpret_cast<fast_method*>(callable);
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  if (nargs >= 1) {
    PyObject* self = args[0];
    if (const proctopo::topology* t = topology_of(m, self)) {
      PyObject* out = nullptr;
      try {
        switch (m->what) {
          case kind::get_coord: out = get_coord(m, *t, self, args, nargs, kwnames); break;
          case kind::get_rank: out = get_rank(*t, args, nargs, kwnames); break;
          case kind::filter_match: out = filter_match(*t, args, nargs, kwnames); break;
          case kind::get_axis_list: out = get_axis_list(*t, args, nargs, kwnames); break;
          case kind::get_axis_comm_lists: out = get_axis_comm_lists(*t, args, nargs, kwnames); break;
          case kind::group_list: out = group_list(*t, args, nargs, kwnames); break;
        }
      } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
      } catch (...) {  // a path that should not throw did: let the slow way say what is wrong
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

}  // namespace

void add_fast_methods(pybind11::module_& m) {
  core_type = reinterpret_cast<PyTypeObject*>(pybind11::type::of<proctopo::topology>().ptr());
  fill_type(fast_method_type);
  if (PyType_Ready(&fast_method_type) < 0) throw pybind11::error_already_set();
  m.def(
      "fast_method",
      [](const std::string& what, pybind11::type owner, pybind11::function wrapped) {
        static const std::pair<const char*, kind> kinds[] = {
            {"get_coord", kind::get_coord},       {"get_rank", kind::get_rank},
            {"filter_match", kind::filter_match}, {"get_axis_list", kind::get_axis_list},
            {"get_axis_comm_lists", kind::get_axis_comm_lists}, {"group_list", kind::group_list},
        };
        const kind* found = nullptr;
        for (const auto& k : kinds) {
          if (what == k.first) found = &k.second;
        }
        if (found == nullptr) throw pybind11::value_error("no fast entry for " + what);
        auto* type = reinterpret_cast<PyTypeObject*>(owner.ptr());
        const Py_ssize_t core_offset = slot_offset(type, "_core");
        const Py_ssize_t coord_offset = slot_offset(type, "ProcessCoord");
        auto* f = PyObject_GC_New(fast_method, &fast_method_type);
        if (f == nullptr) throw pybind11::error_already_set();
        f->vectorcall = call;
        f->what = *found;
        f->owner = reinterpret_cast<PyTypeObject*>(owner.release().ptr());
        f->core_offset = core_offset;
        f->coord_offset = coord_offset;
        f->name = pybind11::object(wrapped.attr("__name__")).release().ptr();
        f->qualname = pybind11::object(wrapped.attr("__qualname__")).release().ptr();
        f->doc = pybind11::object(wrapped.attr("__doc__")).release().ptr();
        f->wrapped = wrapped.release().ptr();
        PyObject_GC_Track(reinterpret_cast<PyObject*>(f));
        return pybind11::reinterpret_steal<pybind11::object>(reinterpret_cast<PyObject*>(f));
      },
      "what"_a, "owner"_a, "wrapped"_a,
      "A fast entry for the method `what` of `owner` (a class with `_core` and `ProcessCoord` slots).");
}

}  // namespace proctopo_binding
