#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "proctopo/topology.hpp"

using proctopo::any;
using proctopo::rank_t;
using proctopo::topology;

namespace {

using vec = std::vector<rank_t>;
using idx = std::vector<std::size_t>;

topology make(const vec& dims) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < dims.size(); ++i) names.push_back("a" + std::to_string(i));
  return topology(names, dims);
}

/// Every shape with `n` axes of sizes 1..maxd.
std::vector<vec> shapes(std::size_t n, rank_t maxd) {
  std::vector<vec> out;
  vec cur(n, 1);
  for (;;) {
    out.push_back(cur);
    std::size_t i = 0;
    while (i < n && cur[i] == maxd) cur[i++] = 1;
    if (i == n) break;
    ++cur[i];
  }
  return out;
}

std::vector<vec> small_shapes() {
  std::vector<vec> all{{}};
  for (std::size_t n = 1; n <= 4; ++n) {
    for (auto& s : shapes(n, n <= 2 ? 5 : 3)) all.push_back(s);
  }
  return all;
}

/// Reference coordinates by an independent odometer over all ranks.
std::vector<vec> reference_coords(const vec& dims) {
  std::vector<vec> out;
  vec c(dims.size(), 0);
  rank_t w = 1;
  for (rank_t d : dims) w *= d;
  for (rank_t r = 0; r < w; ++r) {
    out.push_back(c);
    for (std::size_t i = dims.size(); i-- > 0;) {
      if (++c[i] < dims[i]) break;
      c[i] = 0;
    }
  }
  return out;
}

/// All subsets of {0..n-1} as index lists.
std::vector<idx> subsets(std::size_t n) {
  std::vector<idx> out;
  for (unsigned m = 0; m < (1u << n); ++m) {
    idx s;
    for (std::size_t i = 0; i < n; ++i)
      if (m & (1u << i)) s.push_back(i);
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST(Topology, RoundTripEverySmallShape) {
  for (const vec& dims : small_shapes()) {
    const topology t = make(dims);
    const auto ref = reference_coords(dims);
    ASSERT_EQ(static_cast<std::size_t>(t.world_size()), ref.size());
    for (rank_t r = 0; r < t.world_size(); ++r) {
      const vec c = t.coord_of(r);
      ASSERT_EQ(c, ref[static_cast<std::size_t>(r)]);
      ASSERT_EQ(t.rank_of(c), r);
      for (std::size_t a = 0; a < dims.size(); ++a) ASSERT_EQ(t.coord_of(r, a), c[a]);
    }
  }
}

TEST(Topology, BulkMatchesScalar) {
  const topology t = make({3, 4, 5});
  vec ranks(60);
  std::iota(ranks.begin(), ranks.end(), 0);
  std::reverse(ranks.begin(), ranks.end());
  vec coords(60 * 3), back(60);
  t.coord_of_bulk(ranks.data(), ranks.size(), coords.data());
  t.rank_of_bulk(coords.data(), ranks.size(), back.data());
  EXPECT_EQ(back, ranks);
  for (std::size_t k = 0; k < 60; ++k) {
    EXPECT_EQ(vec(coords.begin() + static_cast<std::ptrdiff_t>(3 * k),
                  coords.begin() + static_cast<std::ptrdiff_t>(3 * k + 3)),
              t.coord_of(ranks[k]));
  }
}

TEST(Topology, StridesAndWorld) {
  const topology t({"pipe", "data", "model"}, {2, 3, 4});
  EXPECT_EQ(t.world_size(), 24);
  EXPECT_EQ(t.strides(), (vec{12, 4, 1}));
  EXPECT_EQ(t.dim("data"), 3);
  EXPECT_EQ(t.dim("nope"), 0);
  EXPECT_EQ(t.find_axis("model"), 2);
  EXPECT_EQ(t.find_axis("nope"), -1);
  EXPECT_EQ(t.describe(), "pipe=2 x data=3 x model=4 (24 ranks)");
  const topology empty({}, {});
  EXPECT_EQ(empty.world_size(), 1);
  EXPECT_EQ(empty.coord_of(0), vec{});
  EXPECT_EQ(empty.match(vec{}), vec{0});
}

// Golden values from DeepSpeed's documented behaviour.
TEST(Topology, GoldenGroupTables) {
  const topology t({"pipe", "data", "model"}, {2, 2, 2});
  EXPECT_EQ(t.group_table(idx{0}), (vec{0, 4, 1, 5, 2, 6, 3, 7}));
  EXPECT_EQ(t.group_table(idx{1}), (vec{0, 2, 1, 3, 4, 6, 5, 7}));
  EXPECT_EQ(t.group_table(idx{2}), (vec{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(t.group_table(idx{2, 0}), (vec{0, 1, 4, 5, 2, 3, 6, 7}));
  EXPECT_EQ(t.group_table(idx{}), (vec{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(t.group_table_shape(idx{}).group_size, 1);
  EXPECT_EQ(t.group_table(idx{0, 1, 2}), (vec{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(t.group_table_shape(idx{0, 1, 2}).num_groups, 1);

  const topology x({"x", "y"}, {2, 3});
  EXPECT_EQ(x.match(vec{0, any}), (vec{0, 1, 2}));
  EXPECT_EQ(x.match(vec{any, 0}), (vec{0, 3}));
  const topology pdm({"pipe", "data", "model"}, {2, 2, 2});
  EXPECT_EQ(pdm.match(vec{0, 1, any}), (vec{2, 3}));
}

TEST(Topology, GroupTablesPartitionAndAgreeWithGroupOf) {
  for (const vec& dims : small_shapes()) {
    const topology t = make(dims);
    const auto ref = reference_coords(dims);
    for (const idx& axes : subsets(dims.size())) {
      const auto shape = t.group_table_shape(axes);
      ASSERT_EQ(shape.num_groups * shape.group_size, t.world_size());
      const vec table = t.group_table(axes);
      std::set<rank_t> seen(table.begin(), table.end());
      ASSERT_EQ(static_cast<rank_t>(seen.size()), t.world_size());  // disjoint and covering
      for (rank_t g = 0; g < shape.num_groups; ++g) {
        const auto row = table.begin() + g * shape.group_size;
        const vec group(row, row + shape.group_size);
        ASSERT_TRUE(std::is_sorted(group.begin(), group.end()));
        for (std::size_t j = 0; j < group.size(); ++j) {
          const rank_t r = group[j];
          // Members agree on every other axis.
          for (std::size_t a = 0; a < dims.size(); ++a) {
            if (std::find(axes.begin(), axes.end(), a) == axes.end()) {
              ASSERT_EQ(ref[static_cast<std::size_t>(r)][a], ref[static_cast<std::size_t>(group[0])][a]);
            }
          }
          ASSERT_EQ(t.group_of(r, axes), group);
          const auto gi = t.group_index(r, axes);
          ASSERT_EQ(gi.first, g);
          ASSERT_EQ(gi.second, static_cast<rank_t>(j));
        }
      }
      // Rows are ordered by the other axes, row-major: first members ascend.
      for (rank_t g = 1; g < shape.num_groups; ++g) {
        ASSERT_LT(table[static_cast<std::size_t>((g - 1) * shape.group_size)],
                  table[static_cast<std::size_t>(g * shape.group_size)]);
      }
    }
  }
}

TEST(Topology, MatchEnumeratesExactlyTheMatchingRanks) {
  for (const vec& dims : small_shapes()) {
    if (dims.size() > 3) continue;
    const topology t = make(dims);
    const auto ref = reference_coords(dims);
    // Every partial coordinate with values in [-1, d] (-1 and d match nothing; any is free).
    std::vector<vec> partials{vec(dims.size(), any)};
    for (std::size_t a = 0; a < dims.size(); ++a) {
      std::vector<vec> next;
      for (const vec& p : partials) {
        for (rank_t v = -1; v <= dims[a]; ++v) {
          vec q = p;
          q[a] = v;
          next.push_back(q);
        }
        next.push_back(p);
      }
      partials = next;
    }
    for (const vec& p : partials) {
      vec expect;
      for (rank_t r = 0; r < t.world_size(); ++r) {
        bool ok = true;
        for (std::size_t a = 0; a < dims.size(); ++a)
          if (p[a] != any && ref[static_cast<std::size_t>(r)][a] != p[a]) ok = false;
        if (ok) expect.push_back(r);
      }
      ASSERT_EQ(t.match(p), expect);
      ASSERT_EQ(t.match_count(p.data()), static_cast<rank_t>(expect.size()));
    }
  }
}

TEST(Topology, Shift) {
  const topology t({"pipe", "data"}, {4, 2});
  EXPECT_EQ(t.shift(0, 0, 1, true), 2);
  EXPECT_EQ(t.shift(6, 0, 1, true), 0);
  EXPECT_EQ(t.shift(6, 0, 1, false), -1);
  EXPECT_EQ(t.shift(0, 0, -1, true), 6);
  EXPECT_EQ(t.shift(0, 0, -1, false), -1);
  EXPECT_EQ(t.shift(1, 0, 7, true), 7);
  EXPECT_EQ(t.shift(1, 0, -9, true), 7);
  EXPECT_EQ(t.shift(3, 1, 1, true), 2);
  EXPECT_EQ(t.shift(3, 0, 0, false), 3);
  EXPECT_EQ(t.shift(1, 0, std::numeric_limits<rank_t>::max(), false), -1);
  EXPECT_EQ(t.shift(1, 0, std::numeric_limits<rank_t>::min() + 1, false), -1);
}

TEST(Topology, RankRepr) {
  const topology t({"pipe", "data", "model"}, {2, 2, 12});
  EXPECT_EQ(t.rank_repr(0, {"data", "pipe"}, "_", "-"), "model_00");
  EXPECT_EQ(t.rank_repr(47, {}, "_", "-"), "pipe_01-data_01-model_11");
  EXPECT_EQ(t.rank_repr(47, {"pipe", "data", "model"}, "_", "-"), "");
  EXPECT_EQ(t.rank_repr(5, {"data"}, "::", "/"), "pipe::00/model::05");
  const topology big({"a"}, {1000});
  EXPECT_EQ(big.rank_repr(999, {}, "_", "-"), "a_999");
  EXPECT_EQ(big.rank_repr(7, {}, "_", "-"), "a_07");
}

TEST(Topology, PrimeFactors) {
  EXPECT_EQ(proctopo::prime_factors(1), vec{});
  EXPECT_EQ(proctopo::prime_factors(2), vec{2});
  EXPECT_EQ(proctopo::prime_factors(12), (vec{2, 2, 3}));
  EXPECT_EQ(proctopo::prime_factors(97), vec{97});
  EXPECT_EQ(proctopo::prime_factors(1 << 20), vec(20, 2));
  EXPECT_EQ(proctopo::prime_factors(2147483647), vec{2147483647});
  EXPECT_EQ(proctopo::prime_factors(600851475143), (vec{71, 839, 1471, 6857}));
  for (rank_t n = 1; n < 2000; ++n) {
    const vec f = proctopo::prime_factors(n);
    ASSERT_TRUE(std::is_sorted(f.begin(), f.end()));
    ASSERT_EQ(std::accumulate(f.begin(), f.end(), rank_t{1}, std::multiplies<rank_t>()), n);
  }
  EXPECT_THROW(proctopo::prime_factors(0), std::invalid_argument);
  EXPECT_THROW(proctopo::prime_factors(-4), std::invalid_argument);
}

TEST(Topology, LargeWorldsUseTheSlowPathCorrectly) {
  // 2^40 ranks: beyond the 32-bit fast division.
  const topology t({"pipe", "data", "model"}, {1024, 1 << 20, 1024});
  const rank_t r = t.world_size() - 1;
  EXPECT_EQ(t.coord_of(r), (vec{1023, (1 << 20) - 1, 1023}));
  EXPECT_EQ(t.rank_of(vec{5, 77777, 3}), 5 * (rank_t{1} << 30) + 77777 * 1024 + 3);
  EXPECT_EQ(t.coord_of(t.rank_of(vec{5, 77777, 3})), (vec{5, 77777, 3}));
  // The 32-bit boundary: 2^32 - 1 ranks (fast) and 2^32 ranks (slow).
  const topology a({"x", "y"}, {65535, 65537});
  EXPECT_EQ(a.coord_of(a.world_size() - 1), (vec{65534, 65536}));
  const topology b({"x", "y"}, {65536, 65536});
  EXPECT_EQ(b.coord_of(b.world_size() - 1), (vec{65535, 65535}));
  EXPECT_EQ(b.group_of(b.world_size() - 1, idx{0}).size(), 65536u);
}

TEST(Topology, MillionRanks) {
  const topology t({"pipe", "data", "model"}, {8, 16384, 8});
  EXPECT_EQ(t.world_size(), 1048576);
  EXPECT_EQ(t.coord_of(1048575), (vec{7, 16383, 7}));
  EXPECT_EQ(t.group_of(1048575, idx{1}).front(), 7 * 131072 + 7);
  EXPECT_EQ(t.group_table_shape(idx{1}).num_groups, 64);
}

TEST(Topology, ConstObjectIsSharedBetweenThreads) {
  const topology t({"pipe", "data", "model"}, {4, 64, 8});
  std::vector<int> bad(4, 0);
  std::vector<std::thread> ts;
  for (int k = 0; k < 4; ++k) {
    ts.emplace_back([&t, &bad, k] {
      for (rank_t r = k; r < t.world_size(); r += 4) {
        if (t.rank_of(t.coord_of(r)) != r) ++bad[static_cast<std::size_t>(k)];
        if (t.group_of(r, idx{1})[0] != r % 8 + (r / 512) * 512) ++bad[static_cast<std::size_t>(k)];
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
}

TEST(Errors, Construction) {
  EXPECT_THROW(topology({"a", "b"}, {2}), std::invalid_argument);
  EXPECT_THROW(topology({"a"}, {2, 3}), std::invalid_argument);
  EXPECT_THROW(topology({"a", "b"}, {2, 0}), std::invalid_argument);
  EXPECT_THROW(topology({"a"}, {-3}), std::invalid_argument);
  EXPECT_THROW(topology({"a", "a"}, {2, 2}), std::invalid_argument);
  EXPECT_THROW(topology({""}, {2}), std::invalid_argument);
  EXPECT_THROW(topology({"a", "b", "c"}, {1 << 30, 1 << 30, 1 << 30}), std::overflow_error);
  EXPECT_THROW(topology({"a", "b", "c"}, {1 << 30, 1 << 30, 1 << 30}), proctopo::world_size_overflow);
  EXPECT_THROW(topology({"a"}, {0}), proctopo::invalid_topology);
  // 2^62 * 2 = 2^63 overflows by one; 2^62 * 1 does not.
  EXPECT_THROW(topology({"a", "b"}, {rank_t{1} << 62, 2}), proctopo::world_size_overflow);
  EXPECT_EQ(topology({"a", "b"}, {rank_t{1} << 62, 1}).world_size(), rank_t{1} << 62);
  try {
    topology({"pipe", "data"}, {2, 0});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "axis 'data' has size 0; every size must be at least 1");
  }
}

TEST(Errors, NamesAreQuotedWhole) {
  using proctopo::detail::quote;
  using namespace std::string_literals;
  EXPECT_EQ(quote("pipe"), "'pipe'");
  EXPECT_EQ(quote("pi\0pe"s), "'pi\\x00pe'");
  EXPECT_EQ(quote("a\tb\nc\rd\x1f\x7f"), "'a\\tb\\nc\\rd\\x1f\\x7f'");
  EXPECT_EQ(quote("a\\b"), "'a\\\\b'");
  EXPECT_EQ(quote("it's"), "\"it's\"");
  EXPECT_EQ(quote("it's \"x\""), "'it\\'s \"x\"'");
  EXPECT_EQ(quote("\xc2\x85|\xc2\xa0|\xc3\xa9"), "'\\x85|\xc2\xa0|\xc3\xa9'");  // C1 NEL escaped, NBSP and é kept
  const topology t({"pipe", "data"}, {2, 3});
  try {
    t.axis_index("pipe\0x"s);
    FAIL();
  } catch (const proctopo::unknown_axis& e) {
    EXPECT_EQ(std::string(e.what()), "unknown axis 'pipe\\x00x'; the axes are ['pipe', 'data']");
  }
  try {
    topology({"a\0b"s}, {0});
    FAIL();
  } catch (const proctopo::invalid_topology& e) {
    EXPECT_EQ(std::string(e.what()), "axis 'a\\x00b' has size 0; every size must be at least 1");
  }
  try {
    proctopo::parse_order("tp\0x-dp-tp\0x"s);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "order 'tp\\x00x-dp-tp\\x00x' names 'tp\\x00x' twice");
  }
}

TEST(Errors, Queries) {
  const topology t({"pipe", "data"}, {2, 3});
  EXPECT_THROW(t.rank_of(vec{2, 0}), proctopo::coordinate_out_of_range);
  EXPECT_THROW(t.rank_of(vec{0, -1}), std::out_of_range);
  EXPECT_THROW(t.rank_of(vec{0}), std::invalid_argument);
  EXPECT_THROW(t.coord_of(6), proctopo::rank_out_of_range);
  EXPECT_THROW(t.coord_of(-1), proctopo::rank_out_of_range);
  EXPECT_THROW(t.coord_of(0, 2), std::out_of_range);
  EXPECT_THROW(t.axis_index("model"), proctopo::unknown_axis);
  EXPECT_THROW(t.axis_indices({"pipe", "pipe"}), std::invalid_argument);
  EXPECT_THROW(t.group_table(idx{0, 0}), std::invalid_argument);
  EXPECT_THROW(t.group_table(idx{5}), std::out_of_range);
  EXPECT_THROW(t.group_of(6, idx{0}), proctopo::rank_out_of_range);
  EXPECT_THROW(t.group_index(0, idx{2}), std::out_of_range);
  EXPECT_THROW(t.shift(6, 0, 1, true), proctopo::rank_out_of_range);
  EXPECT_THROW(t.shift(0, 3, 1, true), std::out_of_range);
  EXPECT_THROW(t.rank_repr(9, {}, "_", "-"), proctopo::rank_out_of_range);
  EXPECT_THROW(t.match(vec{any}), std::invalid_argument);
  vec coords{0, 0, 1, 7}, out(2);
  EXPECT_THROW(t.rank_of_bulk(coords.data(), 2, out.data()), proctopo::coordinate_out_of_range);
  vec ranks{0, 6}, cout(4);
  EXPECT_THROW(t.coord_of_bulk(ranks.data(), 2, cout.data()), proctopo::rank_out_of_range);
  try {
    t.rank_of(vec{0, 3});
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_EQ(std::string(e.what()), "coordinate 3 is out of range for axis 'data' of size 3 (valid: 0..2)");
  }
  try {
    t.axis_index("model");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "unknown axis 'model'; the axes are ['pipe', 'data']");
  }
}

TEST(DimsCreate, MpiStandardExamples) {
  // The examples of MPI_Dims_create in the MPI standard.
  EXPECT_EQ(proctopo::dims_create(6, {0, 0}), (vec{3, 2}));
  EXPECT_EQ(proctopo::dims_create(7, {0, 0}), (vec{7, 1}));
  EXPECT_EQ(proctopo::dims_create(6, {0, 3, 0}), (vec{2, 3, 1}));
  EXPECT_THROW(proctopo::dims_create(7, {0, 3, 0}), std::invalid_argument);
}

TEST(DimsCreate, BalancedAndComplete) {
  EXPECT_EQ(proctopo::dims_create(16, {0, 0, 0}), (vec{4, 2, 2}));
  EXPECT_EQ(proctopo::dims_create(12, {0, 0}), (vec{4, 3}));
  EXPECT_EQ(proctopo::dims_create(1, {0, 0}), (vec{1, 1}));
  EXPECT_EQ(proctopo::dims_create(8, {2, 0, 2}), (vec{2, 2, 2}));
  EXPECT_EQ(proctopo::dims_create(8, {2, 4}), (vec{2, 4}));
  EXPECT_EQ(proctopo::dims_create(1 << 20, {0, 0}), (vec{1024, 1024}));
  for (rank_t n = 1; n <= 300; ++n) {
    for (std::size_t k = 1; k <= 4; ++k) {
      const vec d = proctopo::dims_create(n, vec(k, 0));
      ASSERT_EQ(std::accumulate(d.begin(), d.end(), rank_t{1}, std::multiplies<rank_t>()), n);
      ASSERT_TRUE(std::is_sorted(d.rbegin(), d.rend()));
    }
  }
  EXPECT_THROW(proctopo::dims_create(8, {3, 0}), std::invalid_argument);
  EXPECT_THROW(proctopo::dims_create(8, {2, 2}), std::invalid_argument);
  EXPECT_THROW(proctopo::dims_create(8, {-1, 0}), std::invalid_argument);
  EXPECT_THROW(proctopo::dims_create(0, {0}), std::invalid_argument);
  EXPECT_THROW(proctopo::dims_create(8, {std::numeric_limits<rank_t>::max(), 2, 0}), std::invalid_argument);
}

TEST(ParseOrder, MegatronStrings) {
  using names = std::vector<std::string>;
  EXPECT_EQ(proctopo::parse_order("tp-cp-ep-dp-pp"), (names{"pp", "dp", "ep", "cp", "tp"}));
  EXPECT_EQ(proctopo::parse_order("tp-dp-pp"), (names{"pp", "dp", "tp"}));
  EXPECT_EQ(proctopo::parse_order("tp"), (names{"tp"}));
  EXPECT_THROW(proctopo::parse_order(""), std::invalid_argument);
  EXPECT_THROW(proctopo::parse_order("tp--dp"), std::invalid_argument);
  EXPECT_THROW(proctopo::parse_order("tp-dp-"), std::invalid_argument);
  EXPECT_THROW(proctopo::parse_order("tp-dp-tp"), std::invalid_argument);
}

namespace {
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}
}  // namespace

TEST(Errors, OneTextPerRule) {
  EXPECT_EQ(message_of([] { topology({"a", "b"}, {2}); }),
            "a topology needs one size per axis, but got 2 axes ['a', 'b'] and 1 sizes [2]");
  EXPECT_EQ(message_of([] { topology({"a", "b"}, {rank_t{1} << 40, rank_t{1} << 40}); }),
            "the world size 1099511627776 * 1099511627776 does not fit in a signed 64-bit integer");
  EXPECT_EQ(message_of([] { topology({"a", "b", "c", "b"}, {1, 1, 1, 1}); }),
            "axis name 'b' appears twice (positions 1 and 3); names must be unique");
  const topology t({"pipe", "data"}, {2, 3});
  EXPECT_EQ(message_of([&] { t.axis_indices({"data", "data"}); }), "axis 'data' is listed twice");
  EXPECT_EQ(message_of([&] { t.group_table(idx{1, 1}); }), "axis 'data' is listed twice");
  EXPECT_EQ(message_of([&] { t.coord_of(6); }), "rank 6 is not in the topology: ranks run from 0 to 5");
  EXPECT_EQ(message_of([] { proctopo::detail::throw_rank_out_of_range("99999999999999999999", 6); }),
            "rank 99999999999999999999 is not in the topology: ranks run from 0 to 5");
  EXPECT_EQ(message_of([] { proctopo::detail::throw_too_large("n", "18446744073709551616"); }),
            "n 18446744073709551616 does not fit in a signed 64-bit integer");
}

TEST(Errors, WideSizesAreNamedExactly) {
  // A caller with integers wider than 64 bits passes their text; the size is never accepted.
  EXPECT_THROW(topology({"a"}, {1}, {"18446744073709551616"}), proctopo::world_size_overflow);
  EXPECT_EQ(message_of([] { topology({"a", "b"}, {2, 1}, {"", "18446744073709551616"}); }),
            "the world size 2 * 18446744073709551616 does not fit in a signed 64-bit integer");
  EXPECT_EQ(message_of([] { topology({"a"}, {-1}, {"-18446744073709551616"}); }),
            "axis 'a' has size -18446744073709551616; every size must be at least 1");
  EXPECT_NO_THROW(topology({"a", "b"}, {2, 3}, {}));
  EXPECT_NO_THROW(topology({"a", "b"}, {2, 3}, {"", ""}));
}

TEST(Shift, NoOverflowNearTheLimit) {
  constexpr rank_t top = std::numeric_limits<rank_t>::max();
  const topology t({"x", "y"}, {(rank_t{1} << 62) + 1, 1});
  EXPECT_EQ(t.shift(rank_t{1} << 62, 0, rank_t{1} << 62, true), (rank_t{1} << 62) - 1);
  EXPECT_EQ(t.shift(0, 0, -1, true), rank_t{1} << 62);
  const topology big({"x"}, {top});
  EXPECT_EQ(big.shift(top - 1, 0, 1, true), 0);
  EXPECT_EQ(big.shift(top - 1, 0, top, true), top - 1);
  EXPECT_EQ(big.shift(0, 0, -top, true), 0);
  EXPECT_EQ(big.shift(top - 1, 0, top, false), -1);
  EXPECT_EQ(big.shift(0, 0, -top, false), -1);
  EXPECT_EQ(big.shift(1, 0, top - 3, false), top - 2);
  EXPECT_EQ(big.shift(top - 2, 0, -(top - 2), false), 0);
}

TEST(DimsCreate, FixedEntriesPastTheLimitNeverWrap) {
  constexpr rank_t top = std::numeric_limits<rank_t>::max();
  for (const vec& dims : {vec{3, rank_t{1} << 62, 2}, vec{3, rank_t{1} << 62}, vec{rank_t{1} << 62, rank_t{1} << 62, 0}}) {
    EXPECT_EQ(message_of([&] { proctopo::dims_create(top, dims); }),
              "dims_create: the fixed entries multiply to more than 9223372036854775807, which does not divide "
              "9223372036854775807");
  }
}

TEST(PrimeFactors, MatchTrialDivisionAndHandleLargePrimes) {
  const auto trial = [](rank_t n) {
    vec out;
    for (rank_t p = 2; p * p <= n; ++p) {
      while (n % p == 0) {
        out.push_back(p);
        n /= p;
      }
    }
    if (n > 1) out.push_back(n);
    return out;
  };
  for (rank_t n = 1; n <= 20000; ++n) ASSERT_EQ(proctopo::prime_factors(n), trial(n)) << n;
  constexpr rank_t top = std::numeric_limits<rank_t>::max();
  EXPECT_EQ(proctopo::prime_factors((rank_t{1} << 61) - 1), (vec{(rank_t{1} << 61) - 1}));
  EXPECT_EQ(proctopo::prime_factors(top - 24), (vec{top - 24}));  // 2^63 - 25 is prime
  EXPECT_EQ(proctopo::prime_factors(rank_t{2147483647} * 2147483629), (vec{2147483629, 2147483647}));
  EXPECT_EQ(proctopo::prime_factors(top), (vec{7, 7, 73, 127, 337, 92737, 649657}));
  std::uint64_t x = 88172645463325252ULL;  // xorshift: products of the factors give n back
  for (int k = 0; k < 2000; ++k) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const auto n = static_cast<rank_t>(x >> 1) | 1;
    const vec f = proctopo::prime_factors(n);
    rank_t prod = 1;
    for (rank_t p : f) prod *= p;
    ASSERT_EQ(prod, n);
    ASSERT_TRUE(std::is_sorted(f.begin(), f.end()));
  }
}

TEST(Axes, LookupAndDuplicatesAtTwentyThousandAxes) {
  std::vector<std::string> names;
  for (int i = 0; i < 20000; ++i) names.push_back("a" + std::to_string(i));
  const topology t(names, vec(names.size(), 1));
  for (std::size_t i = 0; i < names.size(); i += 997) EXPECT_EQ(t.axis_index(names[i]), i);
  EXPECT_EQ(t.find_axis("b"), -1);
  names.back() = "a7";
  EXPECT_EQ(message_of([&] { topology(names, vec(names.size(), 1)); }),
            "axis name 'a7' appears twice (positions 7 and 19999); names must be unique");
}

// rank_of and coord_of run a kernel chosen per topology: unrolled for 1..8 axes, a loop
// beyond, and hardware division for worlds of 2^32 ranks or more. Each is pinned here.

TEST(Kernels, RoundTripFiveToTenAxes) {
  for (std::size_t n = 5; n <= 10; ++n) {
    for (const vec& dims : shapes(n, n <= 6 ? 3 : 2)) {
      const topology t = make(dims);
      const auto ref = reference_coords(dims);
      vec out(n);
      for (rank_t r = 0; r < t.world_size(); ++r) {
        t.coord_of(r, out.data());
        ASSERT_EQ(out, ref[static_cast<std::size_t>(r)]) << t.describe() << " rank " << r;
        ASSERT_EQ(t.rank_of(out), r) << t.describe();
      }
    }
  }
}

TEST(Kernels, EveryBadCoordinateIsNamed) {
  const rank_t bad_values[] = {-1, 0, std::numeric_limits<rank_t>::min(), std::numeric_limits<rank_t>::max()};
  for (std::size_t n = 1; n <= 10; ++n) {
    vec dims(n);
    for (std::size_t i = 0; i < n; ++i) dims[i] = static_cast<rank_t>(2 + i % 3);
    const topology t = make(dims);
    for (std::size_t a = 0; a < n; ++a) {
      for (rank_t v : bad_values) {
        if (v == 0) v = dims[a];  // one past the end
        vec c(n, 1);
        c[a] = v;
        try {
          t.rank_of(c);
          FAIL() << t.describe() << " accepted " << v << " on axis " << a;
        } catch (const proctopo::coordinate_out_of_range& e) {
          EXPECT_EQ(std::string(e.what()), "coordinate " + std::to_string(v) + " is out of range for axis 'a" +
                                               std::to_string(a) + "' of size " + std::to_string(dims[a]) +
                                               " (valid: 0.." + std::to_string(dims[a] - 1) + ")");
        }
        if (a + 1 < n) {  // two bad coordinates: the first one is named
          c[n - 1] = -5;
          try {
            t.rank_of(c);
            FAIL();
          } catch (const proctopo::coordinate_out_of_range& e) {
            EXPECT_NE(std::string(e.what()).find("axis 'a" + std::to_string(a) + "'"), std::string::npos);
          }
        }
      }
    }
    EXPECT_THROW(t.coord_of(t.world_size()), proctopo::rank_out_of_range);
    EXPECT_THROW(t.coord_of(-1), proctopo::rank_out_of_range);
    EXPECT_THROW(t.coord_of(std::numeric_limits<rank_t>::min()), proctopo::rank_out_of_range);
  }
}

namespace {
/// Coordinates by plain 64-bit division, innermost axis first: an oracle independent of the core.
vec divide_out(rank_t r, const vec& dims) {
  vec c(dims.size());
  for (std::size_t i = dims.size(); i-- > 0;) {
    c[i] = r % dims[i];
    r /= dims[i];
  }
  return c;
}
}  // namespace

TEST(Kernels, SampledRanksOfLargeAndWideWorlds) {
  const std::vector<vec> cases = {
      {rank_t{1} << 40},                            // one axis, wide
      {3, 5, 7, 11, 13, 17, 19, 23, 29},            // nine axes, just below 2^32: 32-bit path, loop
      {65535, 65537},                               // 2^32 - 1 ranks: the largest 32-bit world
      {2, 65536, 32768},                            // exactly 2^32 ranks: hardware division
      {2, 2, 2, 2, 2, 2, 2, 2, 2, rank_t{1} << 30}, // ten axes, wide
      {7, 1, 1, 1, 1, 1, 1, 4294967291},            // trailing and inner axes of size 1, wide
      {1, 1, 1, 1, 1, 4294967291},                  // a prime just below 2^32 behind unit axes
  };
  std::uint64_t x = 88172645463325252ULL;  // xorshift64
  for (const vec& dims : cases) {
    const topology t = make(dims);
    const rank_t w = t.world_size();
    vec probes{0, 1, w / 2, w - 2, w - 1};
    for (int k = 0; k < 20000; ++k) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      probes.push_back(static_cast<rank_t>(x % static_cast<std::uint64_t>(w)));
    }
    for (rank_t r : probes) {
      if (r < 0) continue;
      const vec c = t.coord_of(r);
      ASSERT_EQ(c, divide_out(r, dims)) << t.describe() << " rank " << r;
      ASSERT_EQ(t.rank_of(c), r) << t.describe();
    }
    EXPECT_THROW(t.coord_of(w), proctopo::rank_out_of_range);
  }
}

TEST(Kernels, CopiesAndMovedFromTopologies) {
  vec expect;
  topology copy({"x"}, {1});
  {
    const topology original({"pipe", "data", "model"}, {4, 6, 8});
    expect = original.coord_of(137);
    copy = original;  // the copy's kernels read the copy's own arrays
  }
  EXPECT_EQ(copy.coord_of(137), expect);
  EXPECT_EQ(copy.rank_of(expect), 137);

  topology source({"pipe", "data", "sequence", "model", "expert"}, {2, 3, 4, 5, 6});
  topology moved(std::move(source));
  EXPECT_EQ(moved.coord_of(719), (vec{1, 2, 3, 4, 5}));
  // A moved-from topology is the topology without axes: one rank, no coordinates.
  EXPECT_EQ(source.ndim(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(source.world_size(), 1);
  EXPECT_EQ(source.coord_of(0), vec{});
  EXPECT_EQ(source.rank_of(vec{}), 0);
  EXPECT_THROW(source.coord_of(1), proctopo::rank_out_of_range);

  topology target({"a"}, {3});
  target = std::move(moved);
  EXPECT_EQ(target.rank_of(vec{1, 2, 3, 4, 5}), 719);
  EXPECT_EQ(moved.world_size(), 1);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.coord_of(0), vec{});
  source = topology({"x", "y"}, {3, 3});  // a moved-from topology can be assigned again
  EXPECT_EQ(source.coord_of(8), (vec{2, 2}));
}

TEST(Kernels, BulkAgreesWithScalarForZeroToTenAxes) {
  for (std::size_t n = 0; n <= 10; ++n) {
    const std::vector<vec> all = n == 0 ? std::vector<vec>{vec{}} : shapes(n, n <= 4 ? 3 : 2);
    for (const vec& dims : all) {
      const topology t = make(dims);
      const auto w = static_cast<std::size_t>(t.world_size());
      vec ranks(w);
      std::iota(ranks.begin(), ranks.end(), 0);
      std::reverse(ranks.begin(), ranks.end());
      vec coords(w * n), back(w, -7);
      t.coord_of_bulk(ranks.data(), w, coords.data());
      t.rank_of_bulk(coords.data(), w, back.data());
      ASSERT_EQ(back, ranks) << t.describe();
      for (std::size_t k = 0; k < w; ++k) {
        ASSERT_EQ(vec(coords.begin() + static_cast<std::ptrdiff_t>(k * n),
                      coords.begin() + static_cast<std::ptrdiff_t>(k * n + n)),
                  t.coord_of(ranks[k]));
      }
      if (n > 0 && w > 1) {  // a bad coordinate in the last axis of the middle row is named
        coords[(w / 2) * n + n - 1] = dims[n - 1];
        try {
          t.rank_of_bulk(coords.data(), w, back.data());
          FAIL() << t.describe();
        } catch (const proctopo::coordinate_out_of_range& e) {
          EXPECT_NE(std::string(e.what()).find("axis 'a" + std::to_string(n - 1) + "'"), std::string::npos);
        }
      }
    }
  }
}

TEST(GroupHead, IsThePrefixOfTheGroupForEveryCount) {
  for (const vec& dims : small_shapes()) {
    const topology t = make(dims);
    for (const idx& axes : subsets(dims.size())) {
      for (rank_t r = 0; r < t.world_size(); ++r) {
        const vec group = t.group_of(r, axes);
        const auto size = static_cast<rank_t>(group.size());
        for (rank_t count = 0; count <= size + 1; ++count) {
          const vec head = t.group_head(r, axes, count);
          ASSERT_EQ(head, vec(group.begin(), group.begin() + std::min(count, size))) << t.describe();
          vec out(static_cast<std::size_t>(size) + 1, -7);
          ASSERT_EQ(t.group_head(r, axes, count, out.data()), std::min(count, size));
          ASSERT_EQ(out[static_cast<std::size_t>(std::min(count, size))], -7);  // nothing past the head
        }
      }
    }
  }
}

TEST(GroupHead, HugeGroupsAreNeverBuilt) {
  // A group of 3037000499^2 ranks (about 2^63): only the head is written.
  const topology t({"a", "b"}, {3037000499, 3037000499});
  EXPECT_EQ(t.group_head(5, idx{0}, 3), (vec{5, 3037000504, 6074001003}));
  EXPECT_EQ(t.group_head(5, idx{0, 1}, 4), (vec{0, 1, 2, 3}));
  EXPECT_EQ(t.group_head(t.world_size() - 1, idx{1, 0}, 2), (vec{0, 1}));
  EXPECT_EQ(t.group_head(5, idx{}, 9), (vec{5}));
  EXPECT_EQ(message_of([&] { t.group_head(5, idx{0}, -1); }), "count must be at least 0, got -1");
  EXPECT_EQ(message_of([] { proctopo::detail::throw_negative_count("-36893488147419103232"); }),
            "count must be at least 0, got -36893488147419103232");
  EXPECT_THROW(t.group_head(-1, idx{0}, 1), proctopo::rank_out_of_range);
  EXPECT_THROW(t.group_head(0, idx{0, 0}, 1), std::invalid_argument);
  EXPECT_THROW(t.group_head(0, idx{2}, 1), std::out_of_range);
}

TEST(ShapeText, AxesInTheOrderGiven) {
  const topology t({"pipe", "data", "model"}, {2, 4, 1});
  EXPECT_EQ(t.shape_text(), "pipe=2 x data=4 x model=1");
  EXPECT_EQ(t.shape_text(idx{2, 0}), "model=1 x pipe=2");
  EXPECT_EQ(t.shape_text(idx{}), "(no axes)");
  EXPECT_EQ(topology({}, {}).shape_text(), "(no axes)");
  EXPECT_EQ(topology({}, {}).describe(), "(no axes) (1 rank)");
  EXPECT_EQ(t.describe(), "pipe=2 x data=4 x model=1 (8 ranks)");
  EXPECT_THROW(t.shape_text(idx{3}), std::out_of_range);
}

TEST(FromOrder, AxesReversedAndSizesByName) {
  using names = std::vector<std::string>;
  const topology t = topology::from_order("tp-cp-dp-pp", {"tp", "pp", "dp"}, {2, 3, 4});
  EXPECT_EQ(t.axes(), (names{"pp", "dp", "cp", "tp"}));
  EXPECT_EQ(t.dims(), (vec{3, 4, 1, 2}));
  EXPECT_EQ(topology::from_order("tp", {}, {}).dims(), (vec{1}));
  EXPECT_EQ(message_of([] { topology::from_order("tp-dp", {"tp", "zz"}, {2, 3}); }),
            "unknown axis 'zz'; the axes are ['dp', 'tp']");
  EXPECT_THROW(topology::from_order("tp-dp", {"zz"}, {2}), proctopo::unknown_axis);
  EXPECT_EQ(message_of([] { topology::from_order("tp-dp", {"tp"}, {0}); }),
            "axis 'tp' has size 0; every size must be at least 1");
  EXPECT_EQ(message_of([] { topology::from_order("tp-dp", {"tp", "tp"}, {2, 2}); }), "axis 'tp' is listed twice");
  EXPECT_EQ(message_of([] { topology::from_order("tp--dp", {"zz"}, {0}); }),
            "order 'tp--dp' has an empty name; write names joined by '-', e.g. 'tp-dp-pp'");
  EXPECT_EQ(message_of([] { topology::from_order("tp-dp", {"dp"}, {1}, {"36893488147419103232"}); }),
            "the world size 36893488147419103232 * 1 does not fit in a signed 64-bit integer");
  EXPECT_THROW(topology::from_order("tp-dp", {"tp"}, {}), std::invalid_argument);
}

TEST(Checks, TheConstructorsRulesWithoutATopology) {
  EXPECT_NO_THROW(proctopo::check_axis_names({"pipe", "data"}));
  EXPECT_NO_THROW(proctopo::check_axis_names({}));
  EXPECT_EQ(message_of([] { proctopo::check_axis_names({"a", "b", "a"}); }),
            message_of([] { topology({"a", "b", "a"}, {1, 1, 1}); }));
  EXPECT_EQ(message_of([] { proctopo::check_axis_names({"a", ""}); }), "axis 1 has an empty name");
  EXPECT_THROW(proctopo::check_axis_names({"a", "a"}), proctopo::invalid_topology);

  EXPECT_NO_THROW(proctopo::check_sizes({"tp", "pp"}, {1, 8}));
  EXPECT_EQ(message_of([] { proctopo::check_sizes({"tp", "pp"}, {2, 0}); }),
            message_of([] { topology({"tp", "pp"}, {2, 0}); }));
  EXPECT_THROW(proctopo::check_sizes({"tp"}, {-1}), proctopo::invalid_topology);
  EXPECT_EQ(message_of([] { proctopo::check_sizes({"tp"}, {1}, {"18446744073709551616"}); }),
            "the size of axis 'tp' 18446744073709551616 does not fit in a signed 64-bit integer");
  EXPECT_EQ(message_of([] { proctopo::check_sizes({"tp"}, {-1}, {"-18446744073709551616"}); }),
            "axis 'tp' has size -18446744073709551616; every size must be at least 1");
  EXPECT_THROW(proctopo::check_sizes({"tp"}, {1, 2}), std::invalid_argument);

  EXPECT_NO_THROW(proctopo::check_rank(7, 8));
  EXPECT_EQ(message_of([] { proctopo::check_rank(8, 8); }), message_of([] { topology({"w"}, {8}).coord_of(8); }));
  EXPECT_THROW(proctopo::check_rank(-1, 8), proctopo::rank_out_of_range);
  EXPECT_EQ(message_of([] { proctopo::check_rank(0, 0); }), "the world size must be at least 1, got 0");
  EXPECT_THROW(proctopo::check_rank(0, -3), proctopo::invalid_topology);
}
