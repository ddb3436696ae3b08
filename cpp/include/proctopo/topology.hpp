#pragma once
/// \file
/// A Cartesian grid of named axes laid over the ranks of a distributed job.
///
/// Row-major: the last axis varies fastest, rank = sum(coord[i] * stride[i]),
/// stride[i] = prod(dims[i+1:]). Every query is O(number of axes) or O(size of
/// its result); nothing is stored per rank. A const topology is safe to share
/// between threads.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proctopo/errors.hpp"

namespace proctopo {

/// Integer type of ranks, coordinates and sizes.
using rank_t = std::int64_t;

/// Wildcard for match(): the axis may take any value.
inline constexpr rank_t any = std::numeric_limits<rank_t>::min();

namespace detail {
class divider;    // fast division by a run-time constant (private: src/divider.hpp)
struct fast_axis;  // one axis of coord_of's 32-bit path (private: src/topology.cpp)
}  // namespace detail

/// Shape of a group table: num_groups rows of group_size ranks each.
struct group_shape {
  rank_t num_groups;  ///< number of groups (rows)
  rank_t group_size;  ///< ranks in each group (columns)
};

/// An n-dimensional row-major grid of named axes.
class topology {
 public:
  /// Builds a topology; throws invalid_topology on bad names or sizes and
  /// world_size_overflow when the world size does not fit in 63 bits.
  /// `wide` serves callers whose integers can be wider than 64 bits: when not empty it
  /// holds, per size, the exact decimal text of a size that did not fit in rank_t (whose
  /// entry in `dims` is then only its sign, -1 or 1) and "" for one that did. A wide size
  /// is never accepted; the error names its exact value.
  topology(std::vector<std::string> axes, std::vector<rank_t> dims, const std::vector<std::string>& wide = {});
  /// The topology of a Megatron order string (fastest axis first, see parse_order): its
  /// axes are the names reversed; `names[k]` gets `sizes[k]`, every other axis size 1.
  /// Throws unknown_axis for a name that is not in the order; `wide` as for the constructor.
  static topology from_order(std::string_view order, const std::vector<std::string>& names,
                             const std::vector<rank_t>& sizes, const std::vector<std::string>& wide = {});
  /// from_order for callers that convert each size themselves (a binding): once the order
  /// and the names are checked, `rename(i, axis)` may replace the name of each axis i, then
  /// `size_of(k, size, wide_text)` sets the size of names[k] (and, for a size past 64 bits,
  /// its text, as `wide` of the constructor), both in axis order; then the topology is built.
  template <class Rename, class SizeOf>
  static topology from_order_with(std::string_view order, const std::vector<std::string>& names, Rename&& rename,
                                  SizeOf&& size_of);
  ~topology();
  topology(const topology& other);
  topology(topology&& other) noexcept;
  topology& operator=(const topology& other);
  topology& operator=(topology&& other) noexcept;

  /// Number of axes.
  std::size_t ndim() const noexcept { return axes_.size(); }
  /// Product of all axis sizes (1 for a topology without axes).
  rank_t world_size() const noexcept { return world_; }
  /// Axis names, slowest first.
  const std::vector<std::string>& axes() const noexcept { return axes_; }
  /// Axis sizes, in axis order.
  const std::vector<rank_t>& dims() const noexcept { return dims_; }
  /// Row-major strides, in axis order.
  const std::vector<rank_t>& strides() const noexcept { return strides_; }

  /// Index of an axis, or -1 when the topology has no such axis; O(log ndim).
  std::ptrdiff_t find_axis(std::string_view name) const noexcept;
  /// Index of an axis; throws unknown_axis when absent.
  std::size_t axis_index(std::string_view name) const;
  /// Indices of several axes; throws unknown_axis or, for a repeated axis, std::invalid_argument.
  std::vector<std::size_t> axis_indices(const std::vector<std::string>& names) const;
  /// Size of an axis, 0 when the topology has no such axis.
  rank_t dim(std::string_view name) const noexcept;

  /// Rank of a full coordinate (ndim() values); throws coordinate_out_of_range.
  rank_t rank_of(const rank_t* coord) const;
  /// Rank of a full coordinate; throws std::invalid_argument on a wrong length.
  rank_t rank_of(const std::vector<rank_t>& coord) const;
  /// Writes the ndim() coordinates of a rank to out; throws rank_out_of_range.
  void coord_of(rank_t rank, rank_t* out) const;
  /// Coordinates of a rank.
  std::vector<rank_t> coord_of(rank_t rank) const;
  /// One coordinate of a rank.
  rank_t coord_of(rank_t rank, std::size_t axis) const;

  /// Ranks of n coordinates stored row-major (n x ndim()); throws on the first bad one.
  void rank_of_bulk(const rank_t* coords, std::size_t n, rank_t* out) const;
  /// Coordinates (n x ndim(), row-major) of n ranks; throws on the first bad one.
  void coord_of_bulk(const rank_t* ranks, std::size_t n, rank_t* out) const;

  /// Number of ranks whose coordinates equal `partial` wherever it is not `any`.
  /// A value outside its axis matches nothing.
  rank_t match_count(const rank_t* partial) const noexcept;
  /// Writes the match_count(partial) matching ranks to out, ascending.
  void match(const rank_t* partial, rank_t* out) const;
  /// The matching ranks, ascending; throws std::invalid_argument on a wrong length.
  std::vector<rank_t> match(const std::vector<rank_t>& partial) const;

  /// Shape of the group table over a subset of axes.
  group_shape group_table_shape(const std::vector<std::size_t>& axes) const;
  /// Writes the group table: one row per combination of the other axes (row-major),
  /// each row the ranks that differ only along `axes` (row-major in topology order).
  void group_table(const std::vector<std::size_t>& axes, rank_t* out) const;
  /// The group table, num_groups * group_size values.
  std::vector<rank_t> group_table(const std::vector<std::size_t>& axes) const;
  /// Writes the row of the group table that holds `rank` (group_size values).
  void group_of(rank_t rank, const std::vector<std::size_t>& axes, rank_t* out) const;
  /// The row of the group table that holds `rank`.
  std::vector<rank_t> group_of(rank_t rank, const std::vector<std::size_t>& axes) const;
  /// Writes the first min(count, group_size) ranks of group_of(rank, axes) and returns how
  /// many: O(count x ndim) whatever the size of the group. Throws std::invalid_argument for
  /// a negative count.
  rank_t group_head(rank_t rank, const std::vector<std::size_t>& axes, rank_t count, rank_t* out) const;
  /// The first min(count, group_size) ranks of group_of(rank, axes).
  std::vector<rank_t> group_head(rank_t rank, const std::vector<std::size_t>& axes, rank_t count) const;
  /// (row, column) of `rank` in the group table over `axes`.
  std::pair<rank_t, rank_t> group_index(rank_t rank, const std::vector<std::size_t>& axes) const;

  /// Rank `delta` steps along an axis; wraps when `periodic`, else -1 past the edge.
  rank_t shift(rank_t rank, std::size_t axis, rank_t delta, bool periodic) const;

  /// "axis{inner}NN{outer}..." for the axes not in `omit` (DeepSpeed's get_rank_repr).
  std::string rank_repr(rank_t rank, const std::vector<std::string>& omit,
                        std::string_view inner_sep, std::string_view outer_sep) const;
  /// The sizes of `axes`, in the order given, as "pipe=2 x data=4"; "(no axes)" for none.
  std::string shape_text(const std::vector<std::size_t>& axes) const;
  /// The sizes of every axis, as "pipe=2 x data=4"; "(no axes)" for a topology without axes.
  std::string shape_text() const;
  /// Short text such as "pipe=2 x data=4 (8 ranks)": shape_text() and the world size.
  std::string describe() const;

  /// Same axes and sizes.
  bool operator==(const topology& other) const noexcept {
    return axes_ == other.axes_ && dims_ == other.dims_;
  }
  /// Differs in axes or sizes.
  bool operator!=(const topology& other) const noexcept { return !(*this == other); }

 private:
  using rank_kernel_t = rank_t (*)(const topology&, const rank_t*);
  using coord_kernel_t = void (*)(const topology&, rank_t, rank_t*);
  // rank_of and coord_of for one axis count, chosen once per topology (src/topology.cpp).
  template <std::size_t N>
  static rank_t rank_kernel(const topology& t, const rank_t* coord);
  template <std::size_t N>
  static void coord_kernel(const topology& t, rank_t rank, rank_t* out) noexcept;
  static void coord_kernel_wide(const topology& t, rank_t rank, rank_t* out) noexcept;
  static void coord_kernel_none(const topology& t, rank_t rank, rank_t* out) noexcept;
  void set_kernels() noexcept;
  void make_empty() noexcept;

  void check_rank(rank_t rank) const;
  void check_axis(std::size_t axis) const;
  void coord_of_unchecked(rank_t rank, rank_t* out) const noexcept;
  [[noreturn]] void throw_bad_coordinate(const rank_t* coord) const;
  std::vector<std::size_t> complement(const std::vector<std::size_t>& axes) const;

  std::vector<std::string> axes_;
  std::vector<rank_t> dims_;
  std::vector<rank_t> strides_;
  std::vector<rank_t> size_stride_;           // {size, stride} per axis, interleaved (rank_of)
  std::vector<detail::fast_axis> fast_axes_;  // stride reciprocals and sizes (worlds below 2^32)
  std::vector<std::size_t> by_name_;          // axis positions sorted by name (O(log n) lookup)
  rank_kernel_t rank_kernel_ = nullptr;
  coord_kernel_t coord_kernel_ = nullptr;
  rank_t world_ = 1;
};

/// The error of each rule, for callers that hold the offending value only as text (numbers
/// wider than 64 bits); the core raises the same errors with the same words.
namespace detail {
/// `s` quoted for error text in the manner of Python's repr: the C0 and C1 control characters
/// (NUL included), DEL, the quote and the backslash escaped, so every character of a name shows.
std::string quote(std::string_view s);
/// Throws coordinate_out_of_range for `value` on an axis of `size` ranks.
[[noreturn]] void throw_coordinate_out_of_range(std::string_view value, std::string_view axis, rank_t size);
/// Throws rank_out_of_range for `value` in a world of `world` ranks.
[[noreturn]] void throw_rank_out_of_range(std::string_view value, rank_t world);
/// Throws world_size_overflow: `what` (e.g. "n") is `value`, past the 64-bit range.
[[noreturn]] void throw_too_large(std::string_view what, std::string_view value);
/// Throws std::invalid_argument for a count of `value` ranks, below 0.
[[noreturn]] void throw_negative_count(std::string_view value);
/// Throws unknown_axis for `name`, listing the axes there are.
[[noreturn]] void throw_unknown_axis(std::string_view name, const std::vector<std::string>& axes);
/// Position of each of `names` in `axes`; throws unknown_axis, or std::invalid_argument for a
/// name given twice.
std::vector<std::size_t> positions(const std::vector<std::string>& axes, const std::vector<std::string>& names);
}  // namespace detail

/// The rules on axis names, without building a topology: throws invalid_topology for an
/// empty or a repeated name, with the words the constructor uses.
void check_axis_names(const std::vector<std::string>& axes);

/// The rule on axis sizes, without building a topology: throws invalid_topology for a
/// size below 1 and, for a size whose `wide` text is not empty (see the constructor),
/// world_size_overflow. Throws std::invalid_argument when the lengths differ.
void check_sizes(const std::vector<std::string>& axes, const std::vector<rank_t>& sizes,
                 const std::vector<std::string>& wide = {});

/// The rule on ranks, without building a topology: throws invalid_topology for a world size
/// below 1 and rank_out_of_range for a rank outside [0, world_size).
void check_rank(rank_t rank, rank_t world_size);

/// Prime factors of n >= 1, ascending with repetition (Pollard's rho with a deterministic
/// Miller-Rabin test: microseconds for any 64-bit n).
std::vector<rank_t> prime_factors(rank_t n);

/// MPI_Dims_create: fills the zero entries of `dims` so that the product is n, as
/// balanced as the greedy rule of MPICH and Open MPI makes them (largest prime
/// factors first, each onto the smallest entry so far), free entries non-increasing.
/// Positive entries stay fixed; throws std::invalid_argument when they do not divide n.
std::vector<rank_t> dims_create(rank_t n, std::vector<rank_t> dims);

/// Axis names of a Megatron order string, slowest first: "tp-cp-dp-pp" gives
/// {"pp", "dp", "cp", "tp"} (Megatron lists the fastest axis first).
std::vector<std::string> parse_order(std::string_view order);

template <class Rename, class SizeOf>
topology topology::from_order_with(std::string_view order, const std::vector<std::string>& names, Rename&& rename,
                                   SizeOf&& size_of) {
  std::vector<std::string> axes = parse_order(order);
  const std::vector<std::size_t> at = detail::positions(axes, names);
  for (std::size_t i = 0; i < axes.size(); ++i) rename(i, axes[i]);
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::vector<std::size_t> given(axes.size(), none);  // which name sizes each axis
  for (std::size_t k = 0; k < names.size(); ++k) given[at[k]] = k;
  std::vector<rank_t> dims(axes.size(), 1);
  std::vector<std::string> wide(axes.size());
  for (std::size_t i = 0; i < axes.size(); ++i) {
    if (given[i] != none) size_of(given[i], dims[i], wide[i]);
  }
  return topology(std::move(axes), std::move(dims), wide);
}

}  // namespace proctopo
