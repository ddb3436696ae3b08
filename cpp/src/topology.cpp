#include "proctopo/topology.hpp"

#include <algorithm>
#include <limits>

#include "divider.hpp"

namespace proctopo {
namespace detail {
namespace {

constexpr rank_t fast_limit = rank_t{1} << 32;

/// One run of an enumeration: `count` values `stride` apart.
struct run {
  rank_t count;
  rank_t stride;
};

/// Merges neighbouring runs whose strides nest exactly (outer = inner.count * inner.stride),
/// so that a block of adjacent axes becomes one long contiguous run.
std::vector<run> coalesce(const std::vector<run>& runs) {
  std::vector<run> out;
  out.reserve(runs.size());
  for (const run& r : runs) {
    if (r.count == 1) continue;
    if (!out.empty() && out.back().stride == r.count * r.stride) {
      out.back().count *= r.count;
      out.back().stride = r.stride;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

/// Writes base + sum(i_k * stride_k) for every index vector in row-major order, or only
/// the first `limit` of them. Ascending whenever the strides decrease (they do for any
/// subset of axes in order). The one enumeration of the core: groups, group tables,
/// heads of groups and matches all come from it.
rank_t* enumerate(const std::vector<run>& runs_in, rank_t base, rank_t* out,
                  rank_t limit = std::numeric_limits<rank_t>::max()) {
  if (limit <= 0) return out;
  const std::vector<run> runs = coalesce(runs_in);
  if (runs.empty()) {
    *out++ = base;
    return out;
  }
  const std::size_t k = runs.size();
  const rank_t inner_n = runs[k - 1].count;
  const rank_t inner_s = runs[k - 1].stride;
  std::vector<rank_t> idx(k, 0);
  // Unsigned: stepping past the last value of a run may leave the rank range for a
  // moment (worlds near 2^63); such a value is undone before it is ever written.
  using u64 = std::uint64_t;
  u64 cur = static_cast<u64>(base);
  const u64 step = static_cast<u64>(inner_s);
  for (;;) {
    const rank_t n = inner_n < limit ? inner_n : limit;
    if (inner_s == 1) {
      for (rank_t t = 0; t < n; ++t) out[t] = static_cast<rank_t>(cur + static_cast<u64>(t));
    } else {
      for (rank_t t = 0; t < n; ++t) out[t] = static_cast<rank_t>(cur + static_cast<u64>(t) * step);
    }
    out += n;
    limit -= n;
    if (limit == 0) return out;
    std::size_t i = k - 1;
    for (;;) {
      if (i == 0) return out;
      --i;
      cur += static_cast<u64>(runs[i].stride);
      if (++idx[i] < runs[i].count) break;
      cur -= static_cast<u64>(runs[i].count) * static_cast<u64>(runs[i].stride);
      idx[i] = 0;
    }
  }
}

}  // namespace

std::string quote(std::string_view s) {
  // Python's repr: single quotes, or double quotes when the text holds ' and no ".
  const bool has_single = s.find('\'') != std::string_view::npos;
  const char quote = has_single && s.find('"') == std::string_view::npos ? '"' : '\'';
  static constexpr char hex[] = "0123456789abcdef";
  std::string q;
  q.reserve(s.size() + 2);
  q += quote;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    unsigned code = c;  // the character escaped as \xNN, if any
    bool escape = c < 0x20 || c == 0x7f;
    if (c == 0xc2 && i + 1 < s.size()) {  // U+0080..U+009F, the C1 controls, in UTF-8
      const auto next = static_cast<unsigned char>(s[i + 1]);
      if (next >= 0x80 && next <= 0x9f) {
        escape = true;
        code = next;
        ++i;
      }
    }
    if (c == '\\' || c == static_cast<unsigned char>(quote)) {
      q += '\\';
      q += static_cast<char>(c);
    } else if (c == '\n') {
      q += "\\n";
    } else if (c == '\r') {
      q += "\\r";
    } else if (c == '\t') {
      q += "\\t";
    } else if (escape) {
      q += "\\x";
      q += hex[code >> 4];
      q += hex[code & 0xf];
    } else {
      q += static_cast<char>(c);
    }
  }
  q += quote;
  return q;
}

}  // namespace detail

#if defined(__GNUC__)
#define PROCTOPO_COLD __attribute__((noinline, cold))
#define PROCTOPO_INLINE inline __attribute__((always_inline))
#define PROCTOPO_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define PROCTOPO_COLD
#define PROCTOPO_INLINE inline
#define PROCTOPO_UNLIKELY(x) (x)
#endif

namespace {
// Error text is built out of line so that the checked fast paths stay small.
[[noreturn]] PROCTOPO_COLD void throw_rank(rank_t rank, rank_t world) {
  detail::throw_rank_out_of_range(std::to_string(rank), world);
}

template <class T, class F>
std::string join(const std::vector<T>& items, std::string_view sep, F&& text) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += text(items[i]);
  }
  return out;
}

[[noreturn]] PROCTOPO_COLD void throw_listed_twice(std::string_view axis) {
  throw std::invalid_argument("axis " + detail::quote(axis) + " is listed twice");
}

// The rule on one axis name (at position i).
void check_name(std::size_t i, const std::string& name) {
  if (name.empty()) throw invalid_topology("axis " + std::to_string(i) + " has an empty name");
}

// The rule on one axis size; `text` is its exact decimal text.
void check_size(const std::string& axis, rank_t size, const std::string& text) {
  if (size < 1) {
    throw invalid_topology("axis " + detail::quote(axis) + " has size " + text + "; every size must be at least 1");
  }
}

// Axis positions sorted by name (for O(log n) lookup); throws invalid_topology for a
// repeated name, found as equal neighbours in O(n log n).
std::vector<std::size_t> sorted_by_name(const std::vector<std::string>& axes) {
  std::vector<std::size_t> order(axes.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&axes](std::size_t x, std::size_t y) { return axes[x] < axes[y]; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    if (axes[order[k - 1]] == axes[order[k]]) {
      throw invalid_topology("axis name " + detail::quote(axes[order[k]]) + " appears twice (positions " +
                             std::to_string(order[k - 1]) + " and " + std::to_string(order[k]) +
                             "); names must be unique");
    }
  }
  return order;
}

}  // namespace

void check_axis_names(const std::vector<std::string>& axes) {
  for (std::size_t i = 0; i < axes.size(); ++i) check_name(i, axes[i]);
  sorted_by_name(axes);
}

void check_sizes(const std::vector<std::string>& axes, const std::vector<rank_t>& sizes,
                 const std::vector<std::string>& wide) {
  if (axes.size() != sizes.size() || (!wide.empty() && wide.size() != sizes.size())) {
    throw std::invalid_argument("check_sizes needs one size per axis, but got " + std::to_string(axes.size()) +
                                " axes and " + std::to_string(sizes.size()) + " sizes");
  }
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const bool is_wide = i < wide.size() && !wide[i].empty();
    check_size(axes[i], sizes[i], is_wide ? wide[i] : std::to_string(sizes[i]));
    if (is_wide) detail::throw_too_large("the size of axis " + detail::quote(axes[i]), wide[i]);
  }
}

void check_rank(rank_t rank, rank_t world_size) {
  if (world_size < 1) {
    throw invalid_topology("the world size must be at least 1, got " + std::to_string(world_size));
  }
  if (rank < 0 || rank >= world_size) throw_rank(rank, world_size);
}

PROCTOPO_COLD void detail::throw_negative_count(std::string_view value) {
  throw std::invalid_argument("count must be at least 0, got " + std::string(value));
}

PROCTOPO_COLD void detail::throw_unknown_axis(std::string_view name, const std::vector<std::string>& axes) {
  throw unknown_axis("unknown axis " + detail::quote(name) + "; the axes are [" + join(axes, ", ", detail::quote) +
                     "]");
}

PROCTOPO_COLD void detail::throw_rank_out_of_range(std::string_view value, rank_t world) {
  throw rank_out_of_range("rank " + std::string(value) + " is not in the topology: ranks run from 0 to " +
                          std::to_string(world - 1));
}

PROCTOPO_COLD void detail::throw_coordinate_out_of_range(std::string_view value, std::string_view axis,
                                                         rank_t size) {
  throw coordinate_out_of_range("coordinate " + std::string(value) + " is out of range for axis " +
                                detail::quote(axis) + " of size " + std::to_string(size) + " (valid: 0.." +
                                std::to_string(size - 1) + ")");
}

PROCTOPO_COLD void detail::throw_too_large(std::string_view what, std::string_view value) {
  throw world_size_overflow(std::string(what) + " " + std::string(value) +
                            " does not fit in a signed 64-bit integer");
}

namespace detail {
/// One axis of coord_of's 32-bit path: the reciprocal of the axis's stride and its size.
struct fast_axis {
  divider stride;
  std::uint64_t size;
};
}  // namespace detail

topology::~topology() = default;
topology::topology(const topology& other) = default;
topology& topology::operator=(const topology& other) = default;

// A moved-from topology is left as the topology without axes (one rank), never with
// kernels that point past its emptied arrays.
topology::topology(topology&& other) noexcept
    : axes_(std::move(other.axes_)),
      dims_(std::move(other.dims_)),
      strides_(std::move(other.strides_)),
      size_stride_(std::move(other.size_stride_)),
      fast_axes_(std::move(other.fast_axes_)),
      by_name_(std::move(other.by_name_)),
      rank_kernel_(other.rank_kernel_),
      coord_kernel_(other.coord_kernel_),
      world_(other.world_) {
  other.make_empty();
}

topology& topology::operator=(topology&& other) noexcept {
  if (this != &other) {
    axes_ = std::move(other.axes_);
    dims_ = std::move(other.dims_);
    strides_ = std::move(other.strides_);
    size_stride_ = std::move(other.size_stride_);
    fast_axes_ = std::move(other.fast_axes_);
    by_name_ = std::move(other.by_name_);
    rank_kernel_ = other.rank_kernel_;
    coord_kernel_ = other.coord_kernel_;
    world_ = other.world_;
    other.make_empty();
  }
  return *this;
}

void topology::make_empty() noexcept {
  axes_.clear();
  dims_.clear();
  strides_.clear();
  size_stride_.clear();
  fast_axes_.clear();
  by_name_.clear();
  world_ = 1;
  set_kernels();
}

topology::topology(std::vector<std::string> axes, std::vector<rank_t> dims, const std::vector<std::string>& wide)
    : axes_(std::move(axes)), dims_(std::move(dims)) {
  const auto size_text = [&](std::size_t i) {
    return i < wide.size() && !wide[i].empty() ? wide[i] : std::to_string(dims_[i]);
  };
  if (axes_.size() != dims_.size() || (!wide.empty() && wide.size() != dims_.size())) {
    std::vector<std::string> sizes;
    for (std::size_t i = 0; i < dims_.size(); ++i) sizes.push_back(size_text(i));
    throw invalid_topology("a topology needs one size per axis, but got " + std::to_string(axes_.size()) +
                           " axes [" + join(axes_, ", ", detail::quote) + "] and " +
                           std::to_string(dims_.size()) + " sizes [" +
                           join(sizes, ", ", [](const std::string& t) { return t; }) + "]");
  }
  for (std::size_t i = 0; i < axes_.size(); ++i) {
    check_name(i, axes_[i]);
    check_size(axes_[i], dims_[i], size_text(i));
  }
  by_name_ = sorted_by_name(axes_);
  world_ = 1;
  bool overflow = false;
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    const bool is_wide = i < wide.size() && !wide[i].empty();
    if (is_wide || world_ > std::numeric_limits<rank_t>::max() / dims_[i]) {
      overflow = true;
      break;
    }
    world_ *= dims_[i];
  }
  if (overflow) {
    std::vector<std::string> sizes;
    for (std::size_t i = 0; i < dims_.size(); ++i) sizes.push_back(size_text(i));
    detail::throw_too_large("the world size", join(sizes, " * ", [](const std::string& t) { return t; }));
  }
  strides_.assign(dims_.size(), 1);
  for (std::size_t i = dims_.size(); i-- > 1;) strides_[i - 1] = strides_[i] * dims_[i];
  size_stride_.reserve(2 * dims_.size());
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    size_stride_.push_back(dims_[i]);
    size_stride_.push_back(strides_[i]);
  }
  if (world_ < detail::fast_limit) {
    fast_axes_.reserve(dims_.size());
    for (std::size_t i = 0; i < dims_.size(); ++i) {
      fast_axes_.push_back({detail::divider(static_cast<std::uint64_t>(strides_[i])),
                            static_cast<std::uint64_t>(dims_[i])});
    }
  }
  set_kernels();
}

std::ptrdiff_t topology::find_axis(std::string_view name) const noexcept {
  const auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                                   [this](std::size_t i, std::string_view n) { return axes_[i] < n; });
  if (it == by_name_.end() || axes_[*it] != name) return -1;
  return static_cast<std::ptrdiff_t>(*it);
}

std::size_t topology::axis_index(std::string_view name) const {
  const std::ptrdiff_t i = find_axis(name);
  if (i < 0) detail::throw_unknown_axis(name, axes_);
  return static_cast<std::size_t>(i);
}

std::vector<std::size_t> detail::positions(const std::vector<std::string>& axes,
                                           const std::vector<std::string>& names) {
  std::vector<std::size_t> out;
  out.reserve(names.size());
  std::vector<bool> given(axes.size(), false);
  for (const std::string& name : names) {
    const auto it = std::find(axes.begin(), axes.end(), name);
    if (it == axes.end()) throw_unknown_axis(name, axes);
    const auto i = static_cast<std::size_t>(it - axes.begin());
    if (given[i]) throw_listed_twice(name);
    given[i] = true;
    out.push_back(i);
  }
  return out;
}

topology topology::from_order(std::string_view order, const std::vector<std::string>& names,
                              const std::vector<rank_t>& sizes, const std::vector<std::string>& wide) {
  if (names.size() != sizes.size() || (!wide.empty() && wide.size() != sizes.size())) {
    throw std::invalid_argument("from_order needs one size per name, but got " + std::to_string(names.size()) +
                                " names and " + std::to_string(sizes.size()) + " sizes");
  }
  return from_order_with(
      order, names, [](std::size_t, std::string&) {},
      [&](std::size_t k, rank_t& size, std::string& text) {
        size = sizes[k];
        if (!wide.empty()) text = wide[k];
      });
}

std::vector<std::size_t> topology::axis_indices(const std::vector<std::string>& names) const {
  std::vector<std::size_t> out;
  out.reserve(names.size());
  std::vector<bool> seen(axes_.size(), false);
  for (const std::string& n : names) {
    const std::size_t i = axis_index(n);
    if (seen[i]) throw_listed_twice(n);
    seen[i] = true;
    out.push_back(i);
  }
  return out;
}

rank_t topology::dim(std::string_view name) const noexcept {
  const std::ptrdiff_t i = find_axis(name);
  return i < 0 ? 0 : dims_[static_cast<std::size_t>(i)];
}

void topology::check_rank(rank_t rank) const {
  if (static_cast<std::uint64_t>(rank) >= static_cast<std::uint64_t>(world_)) throw_rank(rank, world_);
}

void topology::check_axis(std::size_t axis) const {
  if (axis >= axes_.size()) {
    throw std::out_of_range("axis index " + std::to_string(axis) + " is out of range for " +
                            std::to_string(axes_.size()) + " axes");
  }
}

void topology::throw_bad_coordinate(const rank_t* coord) const {
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (coord[i] < 0 || coord[i] >= dims_[i]) {
      detail::throw_coordinate_out_of_range(std::to_string(coord[i]), axes_[i], dims_[i]);
    }
  }
  throw std::logic_error("proctopo: a coordinate was flagged out of range but none is");
}

// rank = sum(coord[i] * stride[i]) with one predicted branch per axis for the range check
// (as unsigned, a valid coordinate is below its size). N > 0 is a compile-time axis count
// (fully unrolled); N == 0 loops over every axis.
template <std::size_t N>
rank_t topology::rank_kernel(const topology& t, const rank_t* coord) {
  const rank_t* ss = t.size_stride_.data();
  const std::size_t n = N > 0 ? N : t.dims_.size();
  std::uint64_t r[2] = {0, 0};  // two partial sums: two shorter chains of additions
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::uint64_t>(coord[i]);
    if (PROCTOPO_UNLIKELY(c >= static_cast<std::uint64_t>(ss[2 * i]))) t.throw_bad_coordinate(coord);
    r[i & 1] += c * static_cast<std::uint64_t>(ss[2 * i + 1]);
  }
  return static_cast<rank_t>(r[0] + r[1]);
}

// Worlds below 2^32: q_i = r / stride_i by multiply-and-shift, independent of each other;
// c_i = q_i - size_i * q_{i-1}. The last stride is 1, so q_{n-1} = r needs no product.
// N > 0 is a compile-time axis count (fully unrolled); N == 0 loops over every axis (n >= 1).
template <std::size_t N>
void topology::coord_kernel(const topology& t, rank_t rank, rank_t* out) noexcept {
  const detail::fast_axis* a = t.fast_axes_.data();
  const std::size_t n = N > 0 ? N : t.dims_.size();
  const auto r = static_cast<std::uint64_t>(rank);
  std::uint64_t prev = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const std::uint64_t q = a[i].stride.div32(r);
    out[i] = static_cast<rank_t>(q - prev * a[i].size);
    prev = q;
  }
  out[n - 1] = static_cast<rank_t>(r - prev * a[n - 1].size);
}

// Worlds of 2^32 ranks or more: hardware division, innermost axis first.
void topology::coord_kernel_wide(const topology& t, rank_t rank, rank_t* out) noexcept {
  const rank_t* d = t.dims_.data();
  auto r = static_cast<std::uint64_t>(rank);
  for (std::size_t i = t.dims_.size(); i-- > 0;) {
    const auto size = static_cast<std::uint64_t>(d[i]);
    const std::uint64_t q = r / size;
    out[i] = static_cast<rank_t>(r - q * size);
    r = q;
  }
}

void topology::coord_kernel_none(const topology&, rank_t, rank_t*) noexcept {}

void topology::set_kernels() noexcept {
  const std::size_t n = dims_.size();
  static constexpr rank_kernel_t rank_kernels[] = {&rank_kernel<0>, &rank_kernel<1>, &rank_kernel<2>,
                                                   &rank_kernel<3>, &rank_kernel<4>, &rank_kernel<5>,
                                                   &rank_kernel<6>, &rank_kernel<7>, &rank_kernel<8>};
  static constexpr coord_kernel_t coord_kernels[] = {&coord_kernel_none, &coord_kernel<1>, &coord_kernel<2>,
                                                     &coord_kernel<3>,   &coord_kernel<4>, &coord_kernel<5>,
                                                     &coord_kernel<6>,   &coord_kernel<7>, &coord_kernel<8>};
  constexpr std::size_t unrolled = sizeof(rank_kernels) / sizeof(rank_kernels[0]) - 1;
  rank_kernel_ = n <= unrolled ? rank_kernels[n] : &rank_kernel<0>;
  if (n == 0) {
    coord_kernel_ = &coord_kernel_none;
  } else if (world_ >= detail::fast_limit) {
    coord_kernel_ = &coord_kernel_wide;
  } else {
    coord_kernel_ = n <= unrolled ? coord_kernels[n] : &coord_kernel<0>;
  }
}

rank_t topology::rank_of(const rank_t* coord) const { return rank_kernel_(*this, coord); }

rank_t topology::rank_of(const std::vector<rank_t>& coord) const {
  if (coord.size() != dims_.size()) {
    throw std::invalid_argument("a coordinate needs " + std::to_string(dims_.size()) +
                                " values, one per axis, but got " + std::to_string(coord.size()));
  }
  return rank_of(coord.data());
}

PROCTOPO_INLINE void topology::coord_of_unchecked(rank_t rank, rank_t* out) const noexcept {
  coord_kernel_(*this, rank, out);
}

void topology::coord_of(rank_t rank, rank_t* out) const {
  if (PROCTOPO_UNLIKELY(static_cast<std::uint64_t>(rank) >= static_cast<std::uint64_t>(world_))) {
    throw_rank(rank, world_);
  }
  return coord_kernel_(*this, rank, out);
}

std::vector<rank_t> topology::coord_of(rank_t rank) const {
  std::vector<rank_t> out(dims_.size());
  coord_of(rank, out.data());
  return out;
}

rank_t topology::coord_of(rank_t rank, std::size_t axis) const {
  check_rank(rank);
  check_axis(axis);
  return (rank / strides_[axis]) % dims_[axis];
}

namespace {
// rank_of over n coordinates (n x axes, row-major); false at the first bad coordinate.
// N > 0 is a compile-time axis count (fully unrolled); N == 0 loops over `axes` axes.
template <std::size_t N>
bool ranks_by_strides(const rank_t* ss, std::size_t axes, const rank_t* coords, std::size_t n,
                      rank_t* out) noexcept {
  const std::size_t d = N > 0 ? N : axes;
  for (std::size_t k = 0; k < n; ++k, coords += d) {
    std::uint64_t r = 0;
    for (std::size_t i = 0; i < d; ++i) {
      const auto c = static_cast<std::uint64_t>(coords[i]);
      if (PROCTOPO_UNLIKELY(c >= static_cast<std::uint64_t>(ss[2 * i]))) return false;
      r += c * static_cast<std::uint64_t>(ss[2 * i + 1]);
    }
    out[k] = static_cast<rank_t>(r);
  }
  return true;
}
}  // namespace

void topology::rank_of_bulk(const rank_t* coords, std::size_t n, rank_t* out) const {
  const std::size_t d = dims_.size();
  const rank_t* ss = size_stride_.data();
  bool ok;
  switch (d) {
    case 0: ok = true; std::fill(out, out + n, rank_t{0}); break;
    case 1: ok = ranks_by_strides<1>(ss, d, coords, n, out); break;
    case 2: ok = ranks_by_strides<2>(ss, d, coords, n, out); break;
    case 3: ok = ranks_by_strides<3>(ss, d, coords, n, out); break;
    case 4: ok = ranks_by_strides<4>(ss, d, coords, n, out); break;
    case 5: ok = ranks_by_strides<5>(ss, d, coords, n, out); break;
    case 6: ok = ranks_by_strides<6>(ss, d, coords, n, out); break;
    default: ok = ranks_by_strides<0>(ss, d, coords, n, out); break;
  }
  if (!ok) {
    for (std::size_t k = 0; k < n; ++k) rank_of(coords + k * d);  // throws on the first bad one
  }
}

void topology::coord_of_bulk(const rank_t* ranks, std::size_t n, rank_t* out) const {
  const std::size_t d = dims_.size();
  for (std::size_t k = 0; k < n; ++k) {
    check_rank(ranks[k]);
    coord_of_unchecked(ranks[k], out + k * d);
  }
}

rank_t topology::match_count(const rank_t* partial) const noexcept {
  rank_t count = 1;
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (partial[i] == any) {
      count *= dims_[i];
    } else if (partial[i] < 0 || partial[i] >= dims_[i]) {
      return 0;
    }
  }
  return count;
}

void topology::match(const rank_t* partial, rank_t* out) const {
  if (match_count(partial) == 0) return;
  std::vector<detail::run> runs;
  rank_t base = 0;
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (partial[i] == any) {
      runs.push_back({dims_[i], strides_[i]});
    } else {
      base += partial[i] * strides_[i];
    }
  }
  detail::enumerate(runs, base, out);
}

std::vector<rank_t> topology::match(const std::vector<rank_t>& partial) const {
  if (partial.size() != dims_.size()) {
    throw std::invalid_argument("a partial coordinate needs " + std::to_string(dims_.size()) +
                                " values (proctopo::any for a free axis), but got " +
                                std::to_string(partial.size()));
  }
  std::vector<rank_t> out(static_cast<std::size_t>(match_count(partial.data())));
  match(partial.data(), out.data());
  return out;
}

std::vector<std::size_t> topology::complement(const std::vector<std::size_t>& axes) const {
  std::vector<bool> in(dims_.size(), false);
  for (std::size_t a : axes) {
    check_axis(a);
    if (in[a]) {
      throw_listed_twice(axes_[a]);
    }
    in[a] = true;
  }
  std::vector<std::size_t> other;
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (!in[i]) other.push_back(i);
  }
  return other;
}

group_shape topology::group_table_shape(const std::vector<std::size_t>& axes) const {
  const std::vector<std::size_t> other = complement(axes);
  rank_t groups = 1;
  for (std::size_t i : other) groups *= dims_[i];
  return {groups, world_ / groups};
}

void topology::group_table(const std::vector<std::size_t>& axes, rank_t* out) const {
  const std::vector<std::size_t> other = complement(axes);
  std::vector<detail::run> inner, outer;
  for (std::size_t i = 0, o = 0; i < dims_.size(); ++i) {
    if (o < other.size() && other[o] == i) {
      outer.push_back({dims_[i], strides_[i]});
      ++o;
    } else {
      inner.push_back({dims_[i], strides_[i]});
    }
  }
  rank_t gs = 1;
  for (const auto& r : inner) gs *= r.count;
  rank_t ng = 1;
  for (const auto& r : outer) ng *= r.count;
  // Row offsets once, then each row is its base plus the offsets.
  std::vector<rank_t> offsets(static_cast<std::size_t>(gs));
  detail::enumerate(inner, 0, offsets.data());
  std::vector<rank_t> bases(static_cast<std::size_t>(ng));
  detail::enumerate(outer, 0, bases.data());
  const rank_t* off = offsets.data();
  for (rank_t g = 0; g < ng; ++g) {
    const rank_t b = bases[static_cast<std::size_t>(g)];
    rank_t* row = out + g * gs;
    for (rank_t j = 0; j < gs; ++j) row[j] = b + off[j];
  }
}

std::vector<rank_t> topology::group_table(const std::vector<std::size_t>& axes) const {
  const group_shape s = group_table_shape(axes);
  std::vector<rank_t> out(static_cast<std::size_t>(s.num_groups * s.group_size));
  group_table(axes, out.data());
  return out;
}

rank_t topology::group_head(rank_t rank, const std::vector<std::size_t>& axes, rank_t count,
                            rank_t* out) const {
  check_rank(rank);
  const rank_t size = group_table_shape(axes).group_size;  // validates the axes
  if (count < 0) detail::throw_negative_count(std::to_string(count));
  std::vector<rank_t> coord(dims_.size());
  coord_of_unchecked(rank, coord.data());
  std::vector<bool> in(dims_.size(), false);
  for (std::size_t a : axes) in[a] = true;
  std::vector<detail::run> runs;
  rank_t base = rank;
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (in[i]) {
      base -= coord[i] * strides_[i];
      runs.push_back({dims_[i], strides_[i]});
    }
  }
  const rank_t n = count < size ? count : size;
  detail::enumerate(runs, base, out, n);
  return n;
}

std::vector<rank_t> topology::group_head(rank_t rank, const std::vector<std::size_t>& axes, rank_t count) const {
  check_rank(rank);
  const rank_t size = group_table_shape(axes).group_size;  // validates the axes
  std::vector<rank_t> out(static_cast<std::size_t>(count <= 0 ? 0 : count < size ? count : size));
  group_head(rank, axes, count, out.data());  // throws for a negative count
  return out;
}

void topology::group_of(rank_t rank, const std::vector<std::size_t>& axes, rank_t* out) const {
  group_head(rank, axes, std::numeric_limits<rank_t>::max(), out);
}

std::vector<rank_t> topology::group_of(rank_t rank, const std::vector<std::size_t>& axes) const {
  return group_head(rank, axes, std::numeric_limits<rank_t>::max());
}

std::pair<rank_t, rank_t> topology::group_index(rank_t rank,
                                                const std::vector<std::size_t>& axes) const {
  check_rank(rank);
  complement(axes);  // validates
  std::vector<rank_t> coord(dims_.size());
  coord_of_unchecked(rank, coord.data());
  std::vector<bool> in(dims_.size(), false);
  for (std::size_t a : axes) in[a] = true;
  rank_t row = 0, col = 0;
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (in[i]) {
      col = col * dims_[i] + coord[i];
    } else {
      row = row * dims_[i] + coord[i];
    }
  }
  return {row, col};
}

rank_t topology::shift(rank_t rank, std::size_t axis, rank_t delta, bool periodic) const {
  check_rank(rank);
  check_axis(axis);
  const rank_t d = dims_[axis];
  const rank_t c = (rank / strides_[axis]) % d;
  // 0 <= c < d <= 2^63 - 1 throughout: no sum below may leave that range.
  rank_t n;
  if (periodic) {
    rank_t step = delta % d;  // in (-d, d)
    if (step < 0) step += d;  // in [0, d)
    n = c >= d - step ? c - (d - step) : c + step;
  } else {
    if (delta >= 0 ? delta > d - 1 - c : delta < -c) return -1;
    n = c + delta;
  }
  return rank + (n - c) * strides_[axis];
}

std::string topology::rank_repr(rank_t rank, const std::vector<std::string>& omit,
                                std::string_view inner_sep, std::string_view outer_sep) const {
  check_rank(rank);
  std::vector<rank_t> coord(dims_.size());
  coord_of_unchecked(rank, coord.data());
  std::vector<bool> omitted(axes_.size(), false);
  for (const std::string& name : omit) {
    const std::ptrdiff_t i = find_axis(name);
    if (i >= 0) omitted[static_cast<std::size_t>(i)] = true;
  }
  std::string out;
  bool first = true;
  for (std::size_t i = 0; i < axes_.size(); ++i) {
    if (omitted[i]) continue;
    if (!first) out += outer_sep;
    first = false;
    out += axes_[i];
    out += inner_sep;
    if (coord[i] < 10) out += '0';
    out += std::to_string(coord[i]);
  }
  return out;
}

std::string topology::shape_text(const std::vector<std::size_t>& axes) const {
  if (axes.empty()) return "(no axes)";
  std::string out;
  for (std::size_t k = 0; k < axes.size(); ++k) {
    check_axis(axes[k]);
    if (k) out += " x ";
    out += axes_[axes[k]];
    out += '=';
    out += std::to_string(dims_[axes[k]]);
  }
  return out;
}

std::string topology::shape_text() const {
  std::vector<std::size_t> all(axes_.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  return shape_text(all);
}

std::string topology::describe() const {
  return shape_text() + " (" + std::to_string(world_) + (world_ == 1 ? " rank)" : " ranks)");
}

namespace {
using u64 = std::uint64_t;

#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 u128;  // private to this file; the headers stay ISO C++
u64 mul_mod(u64 a, u64 b, u64 m) { return static_cast<u64>(static_cast<u128>(a) * b % m); }
#else
u64 mul_mod(u64 a, u64 b, u64 m) {  // double-and-add, for compilers without 128-bit integers
  u64 r = 0;
  a %= m;
  while (b) {
    if (b & 1) r = r >= m - a ? r - (m - a) : r + a;
    a = a >= m - a ? a - (m - a) : a + a;
    b >>= 1;
  }
  return r;
}
#endif

u64 pow_mod(u64 a, u64 e, u64 m) {
  u64 r = 1;
  a %= m;
  while (e) {
    if (e & 1) r = mul_mod(r, a, m);
    a = mul_mod(a, a, m);
    e >>= 1;
  }
  return r;
}

// Deterministic Miller-Rabin for every n < 2^64 (bases 2..37).
bool is_prime(u64 n) {
  if (n < 2) return false;
  for (u64 p : {2u, 3u, 5u, 7u, 11u, 13u, 17u, 19u, 23u, 29u, 31u, 37u}) {
    if (n % p == 0) return n == p;
  }
  u64 d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  for (u64 a : {2u, 3u, 5u, 7u, 11u, 13u, 17u, 19u, 23u, 29u, 31u, 37u}) {
    u64 x = pow_mod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s && composite; ++r) {
      x = mul_mod(x, x, n);
      composite = x != n - 1;
    }
    if (composite) return false;
  }
  return true;
}

u64 gcd(u64 a, u64 b) {
  while (b) {
    const u64 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// A non-trivial factor of an odd composite n (Pollard's rho, Brent's cycle search).
u64 rho(u64 n) {
  for (u64 c = 1;; ++c) {
    u64 x = 2, y = 2, d = 1;
    const auto f = [&](u64 v) { return (mul_mod(v, v, n) + c) % n; };
    for (u64 power = 1, lam = 1; d == 1; ++lam) {
      if (power == lam) {
        x = y;
        power <<= 1;
        lam = 0;
      }
      y = f(y);
      d = gcd(x > y ? x - y : y - x, n);
    }
    if (d != n) return d;
  }
}

void factor(u64 n, std::vector<rank_t>& out) {
  if (n == 1) return;
  if (is_prime(n)) {
    out.push_back(static_cast<rank_t>(n));
    return;
  }
  const u64 d = rho(n);
  factor(d, out);
  factor(n / d, out);
}
}  // namespace

std::vector<rank_t> prime_factors(rank_t n) {
  if (n < 1) {
    throw std::invalid_argument("prime_factors needs a positive integer, got " + std::to_string(n));
  }
  std::vector<rank_t> out;
  auto m = static_cast<u64>(n);
  for (u64 p = 2; p < 1000 && p * p <= m; p += (p == 2 ? 1 : 2)) {  // small factors by trial division
    while (m % p == 0) {
      out.push_back(static_cast<rank_t>(p));
      m /= p;
    }
  }
  factor(m, out);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<rank_t> dims_create(rank_t n, std::vector<rank_t> dims) {
  if (n < 1) {
    throw std::invalid_argument("dims_create needs a positive number of ranks, got " + std::to_string(n));
  }
  rank_t fixed = 1;
  bool past_n = false;  // the fixed entries multiply to more than n
  std::vector<std::size_t> free;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) {
      throw std::invalid_argument("dims_create: entry " + std::to_string(i) + " is " +
                                  std::to_string(dims[i]) + "; entries must be 0 (free) or positive");
    }
    if (dims[i] == 0) {
      free.push_back(i);
    } else if (past_n || fixed > n / dims[i]) {
      past_n = true;  // cannot divide n; keep checking the other entries' signs
    } else {
      fixed *= dims[i];
    }
  }
  if (past_n || n % fixed != 0) {
    throw std::invalid_argument("dims_create: the fixed entries multiply to " +
                                (past_n ? std::string("more than ") + std::to_string(n) : std::to_string(fixed)) +
                                ", which does not divide " + std::to_string(n));
  }
  const rank_t rest = n / fixed;
  if (free.empty()) {
    if (rest != 1) {
      throw std::invalid_argument("dims_create: no free entry is left to hold the remaining factor " +
                                  std::to_string(rest) + " of " + std::to_string(n));
    }
    return dims;
  }
  std::vector<rank_t> f(free.size(), 1);
  std::vector<rank_t> primes = prime_factors(rest);
  for (auto p = primes.rbegin(); p != primes.rend(); ++p) {
    *std::min_element(f.begin(), f.end()) *= *p;
  }
  std::sort(f.begin(), f.end(), [](rank_t a, rank_t b) { return a > b; });
  for (std::size_t k = 0; k < free.size(); ++k) dims[free[k]] = f[k];
  return dims;
}

std::vector<std::string> parse_order(std::string_view order) {
  std::vector<std::string> names;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = order.find('-', start);
    const std::string_view token = order.substr(start, end == std::string_view::npos ? end : end - start);
    if (token.empty()) {
      throw std::invalid_argument("order " + detail::quote(order) +
                                  " has an empty name; write names joined by '-', e.g. 'tp-dp-pp'");
    }
    if (std::find(names.begin(), names.end(), token) != names.end()) {
      throw std::invalid_argument("order " + detail::quote(order) + " names " + detail::quote(token) +
                                  " twice");
    }
    names.emplace_back(token);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  std::reverse(names.begin(), names.end());
  return names;
}

}  // namespace proctopo
