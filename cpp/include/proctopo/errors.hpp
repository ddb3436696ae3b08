#pragma once
/// \file
/// Exceptions thrown by proctopo. Each derives from the standard exception a
/// caller would expect, so catching std::invalid_argument / std::out_of_range works.

#include <stdexcept>

namespace proctopo {

/// Axes and sizes that do not form a valid topology.
class invalid_topology : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A world size that does not fit in a signed 64-bit integer.
class world_size_overflow : public std::overflow_error {
 public:
  using std::overflow_error::overflow_error;
};

/// An axis name that the topology does not have.
class unknown_axis : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A coordinate outside [0, size) of its axis.
class coordinate_out_of_range : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

/// A rank outside [0, world_size).
class rank_out_of_range : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

}  // namespace proctopo
