/// \file
/// Google Benchmark suite for the proctopo C++ core, with a plain hand-written
/// C++ loop (hardware division, no precomputation) measured in the same run as the
/// baseline for every operation, so that ratios come from one process on one machine.
///
/// Benchmark names follow  <operation>/<impl>/<shape>[/<axis>]  where impl is
/// "proctopo" or "baseline"; bench/compare.py reads them from --benchmark_format=json.
/// Every benchmark reports a "per_elem" counter: seconds per call (per-call
/// benchmarks), per rank (bulk) or per written element (tables and matches).

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "proctopo/topology.hpp"

namespace {

using proctopo::rank_t;
using proctopo::topology;

/// Calls per iteration of a per-call benchmark (a power of two; inputs are cycled).
constexpr std::size_t batch = 1024;

struct shape {
  std::string name;
  std::vector<std::string> axes;
  std::vector<rank_t> dims;
};

std::vector<std::string> axis_names(std::size_t k) {
  static const char* const names[] = {"pipe", "data", "expert", "context", "tensor", "a5", "a6", "a7"};
  return {names, names + k};
}

/// Shapes for the 1..8-axis per-call sweep: realistic leading axes, odd sizes past five.
shape sweep_shape(std::size_t k) {
  static const std::vector<std::vector<rank_t>> dims = {
      {65536},
      {8, 8192},
      {8, 1024, 8},
      {8, 256, 4, 8},
      {8, 128, 4, 2, 8},
      {8, 64, 4, 2, 8, 3},
      {8, 32, 4, 2, 8, 3, 5},
      {8, 16, 4, 2, 8, 3, 5, 7},
  };
  return {std::to_string(k) + "axes", axis_names(k), dims[k - 1]};
}

/// The two layouts of bench/compare.py: pipe 8 x data W/64 x model 8 and
/// pipe 8 x data W/512 x expert 4 x context 2 x tensor 8.
shape layout(std::size_t naxes, rank_t world) {
  if (naxes == 3) {
    return {"3ax:" + std::to_string(world), {"pipe", "data", "model"}, {8, world / 64, 8}};
  }
  return {"5ax:" + std::to_string(world),
          {"pipe", "data", "expert", "context", "tensor"},
          {8, world / 512, 4, 2, 8}};
}

rank_t product(const std::vector<rank_t>& dims) {
  rank_t w = 1;
  for (rank_t d : dims) w *= d;
  return w;
}

std::vector<rank_t> row_major_strides(const std::vector<rank_t>& dims) {
  std::vector<rank_t> s(dims.size(), 1);
  for (std::size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

/// Hides values from the optimiser so that the baseline really divides at run time.
std::vector<rank_t> opaque(std::vector<rank_t> v) {
  benchmark::DoNotOptimize(v.data());
  benchmark::ClobberMemory();
  return v;
}

void set_per_elem(benchmark::State& state, double elems_per_iter) {
  state.counters["per_elem"] = benchmark::Counter(
      elems_per_iter, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["elems"] = benchmark::Counter(elems_per_iter);
  state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * elems_per_iter));
}

// ---------------------------------------------------------------------------
// Plain loops: what a programmer writes by hand, without precomputed reciprocals.
// The per-call ones are noinline so that they pay one call per rank, as the core does
// (the core is a separate library, so its calls are never inlined into this file).
// "_checked" variants range-check their input as the core must; the others do not, so
// the difference between a loop and its checked twin is the cost of the check.

/// rank_of: multiply-add over int64 coordinates and precomputed strides.
template <bool Checked>
__attribute__((noinline)) rank_t loop_rank_of(const rank_t* dims, const rank_t* strides, std::size_t n,
                                              const rank_t* coord) {
  rank_t r = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (Checked && (coord[i] < 0 || coord[i] >= dims[i])) throw std::out_of_range("coordinate");
    r += coord[i] * strides[i];
  }
  return r;
}

/// rank_of in 32-bit arithmetic (valid when the world fits in 32 bits).
template <bool Checked>
__attribute__((noinline)) rank_t loop32_rank_of(const std::uint32_t* dims, const std::uint32_t* strides,
                                                std::size_t n, const rank_t* coord) {
  std::uint32_t r = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (Checked && static_cast<std::uint64_t>(coord[i]) >= dims[i]) throw std::out_of_range("coordinate");
    r += static_cast<std::uint32_t>(coord[i]) * strides[i];
  }
  return static_cast<rank_t>(r);
}

/// coord_of: 64-bit div/mod per axis, innermost axis first (a dependent chain of divisions).
template <bool Checked>
__attribute__((noinline)) void div64_coord_of(const rank_t* dims, std::size_t n, rank_t world, rank_t rank,
                                              rank_t* out) {
  if (Checked && (rank < 0 || rank >= world)) throw std::out_of_range("rank");
  for (std::size_t i = n; i-- > 0;) {
    out[i] = rank % dims[i];
    rank /= dims[i];
  }
}

/// coord_of: uint32_t div/mod per axis, innermost axis first.
template <bool Checked>
__attribute__((noinline)) void div32_coord_of(const std::uint32_t* dims, std::size_t n, rank_t world,
                                              rank_t rank, rank_t* out) {
  if (Checked && static_cast<std::uint64_t>(rank) >= static_cast<std::uint64_t>(world)) {
    throw std::out_of_range("rank");
  }
  auto r = static_cast<std::uint32_t>(rank);
  for (std::size_t i = n; i-- > 0;) {
    const std::uint32_t q = r / dims[i];
    out[i] = static_cast<rank_t>(r - q * dims[i]);
    r = q;
  }
}

/// coord_of: precomputed strides and uint32_t division, c_i = (r / stride_i) % d_i: the
/// divisions are independent of each other, so they overlap in the divider.
template <bool Checked>
__attribute__((noinline)) void strides32_coord_of(const std::uint32_t* dims, const std::uint32_t* strides,
                                                  std::size_t n, rank_t world, rank_t rank, rank_t* out) {
  if (Checked && static_cast<std::uint64_t>(rank) >= static_cast<std::uint64_t>(world)) {
    throw std::out_of_range("rank");
  }
  const auto r = static_cast<std::uint32_t>(rank);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<rank_t>((r / strides[i]) % dims[i]);
}

/// coord_of: precomputed strides and uint32_t division, one division per axis:
/// q_i = r / stride_i, c_i = q_i - d_i * q_{i-1} (the core's recurrence, with hardware division).
template <bool Checked>
__attribute__((noinline)) void quot32_coord_of(const std::uint32_t* dims, const std::uint32_t* strides,
                                               std::size_t n, rank_t world, rank_t rank, rank_t* out) {
  if (Checked && static_cast<std::uint64_t>(rank) >= static_cast<std::uint64_t>(world)) {
    throw std::out_of_range("rank");
  }
  const auto r = static_cast<std::uint32_t>(rank);
  std::uint32_t prev = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t q = r / strides[i];
    out[i] = static_cast<rank_t>(q - prev * dims[i]);
    prev = q;
  }
}

std::vector<std::uint32_t> narrow(const std::vector<rank_t>& v) {
  std::vector<std::uint32_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<std::uint32_t>(v[i]);
  benchmark::DoNotOptimize(out.data());
  benchmark::ClobberMemory();
  return out;
}

/// One axis's group table: decompose each group index with hardware division,
/// then walk the axis by its stride.
void baseline_group_table(const std::vector<rank_t>& dims, const std::vector<rank_t>& strides,
                          std::size_t axis, rank_t* out) {
  const std::size_t n = dims.size();
  const rank_t world = product(dims);
  const rank_t gs = dims[axis];
  const rank_t ng = world / gs;
  const rank_t st = strides[axis];
  for (rank_t g = 0; g < ng; ++g) {
    rank_t rem = g, base = 0;
    for (std::size_t i = n; i-- > 0;) {
      if (i == axis) continue;
      base += (rem % dims[i]) * strides[i];
      rem /= dims[i];
    }
    rank_t* row = out + g * gs;
    for (rank_t j = 0; j < gs; ++j) row[j] = base + j * st;
  }
}

// ---------------------------------------------------------------------------
// Per call: rank_of and coord_of for 1..8 axes.

/// Implementations in the per-call sweep; the names are the <impl> part of the benchmark name.
enum class rank_impl { core, loop, loop_checked, loop32, loop32_checked };
enum class coord_impl {
  core,
  div64,
  div64_checked,
  div32,
  div32_checked,
  strides32,
  strides32_checked,
  quot32,
  quot32_checked
};

void BM_rank_of(benchmark::State& state, std::size_t k, rank_impl impl) {
  const shape s = sweep_shape(k);
  const topology topo(s.axes, s.dims);
  const std::vector<rank_t> dims = opaque(s.dims);
  const std::vector<rank_t> strides = opaque(row_major_strides(s.dims));
  const std::vector<std::uint32_t> dims32 = narrow(s.dims);
  const std::vector<std::uint32_t> strides32 = narrow(row_major_strides(s.dims));
  std::mt19937_64 rng(42);
  std::vector<rank_t> coords(batch * k);
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t i = 0; i < k; ++i) {
      coords[b * k + i] = static_cast<rank_t>(rng() % static_cast<std::uint64_t>(s.dims[i]));
    }
  }
  const auto run = [&](auto&& one) {
    for (auto _ : state) {
      rank_t acc = 0;
      for (std::size_t b = 0; b < batch; ++b) acc += one(coords.data() + b * k);
      benchmark::DoNotOptimize(acc);
    }
  };
  switch (impl) {
    case rank_impl::core: run([&](const rank_t* c) { return topo.rank_of(c); }); break;
    case rank_impl::loop:
      run([&](const rank_t* c) { return loop_rank_of<false>(dims.data(), strides.data(), k, c); });
      break;
    case rank_impl::loop_checked:
      run([&](const rank_t* c) { return loop_rank_of<true>(dims.data(), strides.data(), k, c); });
      break;
    case rank_impl::loop32:
      run([&](const rank_t* c) { return loop32_rank_of<false>(dims32.data(), strides32.data(), k, c); });
      break;
    case rank_impl::loop32_checked:
      run([&](const rank_t* c) { return loop32_rank_of<true>(dims32.data(), strides32.data(), k, c); });
      break;
  }
  set_per_elem(state, batch);
}

void BM_coord_of(benchmark::State& state, std::size_t k, coord_impl impl) {
  const shape s = sweep_shape(k);
  const topology topo(s.axes, s.dims);
  const std::vector<rank_t> dims = opaque(s.dims);
  const std::vector<std::uint32_t> dims32 = narrow(s.dims);
  const std::vector<std::uint32_t> strides32 = narrow(row_major_strides(s.dims));
  const rank_t world = topo.world_size();
  std::mt19937_64 rng(7);
  std::vector<rank_t> ranks(batch);
  for (auto& r : ranks) r = static_cast<rank_t>(rng() % static_cast<std::uint64_t>(world));
  std::vector<rank_t> out(k);
  const auto run = [&](auto&& one) {
    for (auto _ : state) {
      for (std::size_t b = 0; b < batch; ++b) {
        one(ranks[b], out.data());
        benchmark::DoNotOptimize(out.data());
      }
      benchmark::ClobberMemory();
    }
  };
  const std::uint32_t* d32 = dims32.data();
  const std::uint32_t* s32 = strides32.data();
  switch (impl) {
    case coord_impl::core: run([&](rank_t r, rank_t* o) { topo.coord_of(r, o); }); break;
    case coord_impl::div64:
      run([&](rank_t r, rank_t* o) { div64_coord_of<false>(dims.data(), k, world, r, o); });
      break;
    case coord_impl::div64_checked:
      run([&](rank_t r, rank_t* o) { div64_coord_of<true>(dims.data(), k, world, r, o); });
      break;
    case coord_impl::div32: run([&](rank_t r, rank_t* o) { div32_coord_of<false>(d32, k, world, r, o); }); break;
    case coord_impl::div32_checked:
      run([&](rank_t r, rank_t* o) { div32_coord_of<true>(d32, k, world, r, o); });
      break;
    case coord_impl::strides32:
      run([&](rank_t r, rank_t* o) { strides32_coord_of<false>(d32, s32, k, world, r, o); });
      break;
    case coord_impl::strides32_checked:
      run([&](rank_t r, rank_t* o) { strides32_coord_of<true>(d32, s32, k, world, r, o); });
      break;
    case coord_impl::quot32:
      run([&](rank_t r, rank_t* o) { quot32_coord_of<false>(d32, s32, k, world, r, o); });
      break;
    case coord_impl::quot32_checked:
      run([&](rank_t r, rank_t* o) { quot32_coord_of<true>(d32, s32, k, world, r, o); });
      break;
  }
  set_per_elem(state, batch);
}

// ---------------------------------------------------------------------------
// Bulk: every rank of a layout, rank -> coord and coord -> rank.

void BM_coord_of_bulk(benchmark::State& state, std::size_t naxes, rank_t world, bool core) {
  const shape s = layout(naxes, world);
  const topology topo(s.axes, s.dims);
  const std::vector<rank_t> dims = opaque(s.dims);
  const std::size_t k = s.dims.size();
  std::vector<rank_t> ranks(static_cast<std::size_t>(world));
  for (std::size_t r = 0; r < ranks.size(); ++r) ranks[r] = static_cast<rank_t>(r);
  std::vector<rank_t> out(ranks.size() * k);
  for (auto _ : state) {
    if (core) {
      topo.coord_of_bulk(ranks.data(), ranks.size(), out.data());
    } else {
      for (std::size_t r = 0; r < ranks.size(); ++r) {
        rank_t x = ranks[r];
        if (x < 0 || x >= world) throw std::out_of_range("rank");
        rank_t* o = out.data() + r * k;
        for (std::size_t i = k; i-- > 0;) {
          o[i] = x % dims[i];
          x /= dims[i];
        }
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_per_elem(state, static_cast<double>(world));
}

void BM_rank_of_bulk(benchmark::State& state, std::size_t naxes, rank_t world, bool core) {
  const shape s = layout(naxes, world);
  const topology topo(s.axes, s.dims);
  const std::vector<rank_t> dims = opaque(s.dims);
  const std::vector<rank_t> strides = opaque(row_major_strides(s.dims));
  const std::size_t k = s.dims.size();
  std::vector<rank_t> all(static_cast<std::size_t>(world));
  for (std::size_t r = 0; r < all.size(); ++r) all[r] = static_cast<rank_t>(r);
  std::vector<rank_t> coords(all.size() * k);
  topo.coord_of_bulk(all.data(), all.size(), coords.data());
  std::vector<rank_t> out(static_cast<std::size_t>(world));
  for (auto _ : state) {
    if (core) {
      topo.rank_of_bulk(coords.data(), out.size(), out.data());
    } else {
      for (std::size_t r = 0; r < out.size(); ++r) {
        const rank_t* c = coords.data() + r * k;
        rank_t x = 0;
        for (std::size_t i = 0; i < k; ++i) {
          if (c[i] < 0 || c[i] >= dims[i]) throw std::out_of_range("coordinate");
          x += c[i] * strides[i];
        }
        out[r] = x;
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_per_elem(state, static_cast<double>(world));
}

// ---------------------------------------------------------------------------
// Group tables: one axis's full table (what groups(axis) returns), per element.
// "proctopo" and "baseline" write into a buffer allocated once; the "_alloc" variants
// allocate a fresh uninitialised buffer per call, as a Python call must.

enum class table_impl { core, baseline, core_alloc, baseline_alloc };

void BM_group_table(benchmark::State& state, std::size_t naxes, rank_t world, std::string axis,
                    table_impl impl) {
  const shape s = layout(naxes, world);
  const topology topo(s.axes, s.dims);
  const std::vector<rank_t> dims = opaque(s.dims);
  const std::vector<rank_t> strides = opaque(row_major_strides(s.dims));
  const std::size_t a = topo.axis_index(axis);
  const std::vector<std::size_t> sel{a};
  const auto n = static_cast<std::size_t>(world);
  std::vector<rank_t> out(n);
  for (auto _ : state) {
    switch (impl) {
      case table_impl::core:
        topo.group_table(sel, out.data());
        benchmark::DoNotOptimize(out.data());
        break;
      case table_impl::baseline:
        baseline_group_table(dims, strides, a, out.data());
        benchmark::DoNotOptimize(out.data());
        break;
      case table_impl::core_alloc: {
        std::unique_ptr<rank_t[]> buf(new rank_t[n]);
        topo.group_table(sel, buf.get());
        benchmark::DoNotOptimize(buf.get());
        break;
      }
      case table_impl::baseline_alloc: {
        std::unique_ptr<rank_t[]> buf(new rank_t[n]);
        baseline_group_table(dims, strides, a, buf.get());
        benchmark::DoNotOptimize(buf.get());
        break;
      }
    }
    benchmark::ClobberMemory();
  }
  set_per_elem(state, static_cast<double>(world));
}

/// The std::vector-returning overload (value-initialises, then fills).
void BM_group_table_vector(benchmark::State& state, std::size_t naxes, rank_t world,
                           std::string axis) {
  const shape s = layout(naxes, world);
  const topology topo(s.axes, s.dims);
  const std::vector<std::size_t> sel{topo.axis_index(axis)};
  for (auto _ : state) {
    std::vector<rank_t> t = topo.group_table(sel);
    benchmark::DoNotOptimize(t.data());
    benchmark::ClobberMemory();
  }
  set_per_elem(state, static_cast<double>(world));
}

// ---------------------------------------------------------------------------
// match: one fixed coordinate (filter_match(axis=1)), per matching rank.
// The baseline is the obvious scan over every rank, as DeepSpeed does in Python.

void BM_match(benchmark::State& state, std::size_t naxes, rank_t world, std::string axis,
              bool core) {
  const shape s = layout(naxes, world);
  const topology topo(s.axes, s.dims);
  const std::vector<rank_t> dims = opaque(s.dims);
  const std::size_t a = topo.axis_index(axis);
  std::vector<rank_t> partial(dims.size(), proctopo::any);
  partial[a] = 1;
  const auto count = static_cast<std::size_t>(topo.match_count(partial.data()));
  std::vector<rank_t> out(count);
  const rank_t stride = row_major_strides(s.dims)[a];
  for (auto _ : state) {
    if (core) {
      topo.match(partial.data(), out.data());
    } else {
      std::size_t w = 0;
      for (rank_t r = 0; r < world; ++r) {
        if ((r / stride) % dims[a] == 1) out[w++] = r;
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_per_elem(state, static_cast<double>(count));
}

// ---------------------------------------------------------------------------

void register_all() {
  const char* impls[] = {"proctopo", "baseline"};
  const std::pair<rank_impl, const char*> rank_impls[] = {
      {rank_impl::core, "proctopo"},         {rank_impl::loop, "loop"},
      {rank_impl::loop_checked, "loop_checked"}, {rank_impl::loop32, "loop32"},
      {rank_impl::loop32_checked, "loop32_checked"},
  };
  const std::pair<coord_impl, const char*> coord_impls[] = {
      {coord_impl::core, "proctopo"},
      {coord_impl::div64, "div64"},
      {coord_impl::div64_checked, "div64_checked"},
      {coord_impl::div32, "div32"},
      {coord_impl::div32_checked, "div32_checked"},
      {coord_impl::strides32, "strides32"},
      {coord_impl::strides32_checked, "strides32_checked"},
      {coord_impl::quot32, "quot32"},
      {coord_impl::quot32_checked, "quot32_checked"},
  };
  for (std::size_t k = 1; k <= 8; ++k) {
    const std::string shape_name = sweep_shape(k).name;
    for (const auto& [impl, label] : rank_impls) {
      benchmark::RegisterBenchmark(("rank_of/" + std::string(label) + "/" + shape_name).c_str(), BM_rank_of, k,
                                   impl);
    }
    for (const auto& [impl, label] : coord_impls) {
      benchmark::RegisterBenchmark(("coord_of/" + std::string(label) + "/" + shape_name).c_str(), BM_coord_of,
                                   k, impl);
    }
  }
  for (std::size_t naxes : {std::size_t{3}, std::size_t{5}}) {
    for (int c = 0; c < 2; ++c) {
      const std::string name = layout(naxes, 65536).name;
      benchmark::RegisterBenchmark(("coord_of_bulk/" + std::string(impls[c]) + "/" + name).c_str(),
                                   BM_coord_of_bulk, naxes, rank_t{65536}, c == 0);
      benchmark::RegisterBenchmark(("rank_of_bulk/" + std::string(impls[c]) + "/" + name).c_str(),
                                   BM_rank_of_bulk, naxes, rank_t{65536}, c == 0);
    }
  }
  const std::pair<table_impl, const char*> table_impls[] = {
      {table_impl::core, "proctopo"},
      {table_impl::baseline, "baseline"},
      {table_impl::core_alloc, "proctopo_alloc"},
      {table_impl::baseline_alloc, "baseline_alloc"},
  };
  for (std::size_t naxes : {std::size_t{3}, std::size_t{5}}) {
    for (rank_t world : {rank_t{1024}, rank_t{65536}, rank_t{1048576}}) {
      const std::string name = layout(naxes, world).name;
      for (const auto& [impl, label] : table_impls) {
        benchmark::RegisterBenchmark(("group_table/" + std::string(label) + "/" + name + "/data").c_str(),
                                     BM_group_table, naxes, world, std::string("data"), impl);
      }
      benchmark::RegisterBenchmark(("group_table/proctopo_vector/" + name + "/data").c_str(),
                                   BM_group_table_vector, naxes, world, std::string("data"));
    }
  }
  // Other axes of the 3-axis layout at 65,536 ranks: outermost and innermost.
  for (const char* axis : {"pipe", "model"}) {
    const std::string name = layout(3, 65536).name;
    for (const auto& [impl, label] : table_impls) {
      benchmark::RegisterBenchmark(
          ("group_table/" + std::string(label) + "/" + name + "/" + axis).c_str(), BM_group_table,
          std::size_t{3}, rank_t{65536}, std::string(axis), impl);
    }
  }
  for (const char* axis : {"pipe", "data", "model"}) {
    for (int c = 0; c < 2; ++c) {
      const std::string name = layout(3, 65536).name;
      benchmark::RegisterBenchmark(
          ("match/" + std::string(impls[c]) + "/" + name + "/" + axis).c_str(), BM_match,
          std::size_t{3}, rank_t{65536}, std::string(axis), c == 0);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef __OPTIMIZE__
  benchmark::AddCustomContext("proctopo_optimized", "yes");
#else
  benchmark::AddCustomContext("proctopo_optimized", "NO: build with CMAKE_BUILD_TYPE=Release");
#endif
#if defined(__clang__)
  benchmark::AddCustomContext("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  benchmark::AddCustomContext("compiler", "gcc " __VERSION__);
#endif
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
