#pragma once
/// \file
/// Division by a divisor fixed at run time, by multiply-and-shift instead of a
/// hardware divide. Exact for numerators and divisors below 2^32 (Lemire, Kaser
/// and Kurz, "Faster remainder by direct computation", 2019).

#include <cstdint>

namespace proctopo {
namespace detail {

/// Precomputed reciprocal of a divisor d in [1, 2^32].
class divider {
 public:
  /// Divisor 1.
  constexpr divider() noexcept = default;
  /// Precomputes ceil(2^64 / d); d == 1 is kept as a pass-through.
  explicit constexpr divider(std::uint64_t d) noexcept
      : d_(d), m_(d > 1 ? UINT64_MAX / d + 1 : 0), one_(d == 1 ? UINT64_MAX : 0) {}

  /// The divisor.
  constexpr std::uint64_t divisor() const noexcept { return d_; }

  /// n / d for n < 2^32.
  std::uint64_t div32(std::uint64_t n) const noexcept {
    // Branch-free: for d == 1 the reciprocal 2^64 does not fit, so m_ is 0 and n passes through.
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(m_) * n) >> 64) + (n & one_);
  }

  /// n / d for any n (hardware division).
  std::uint64_t div64(std::uint64_t n) const noexcept { return n / d_; }

 private:
  std::uint64_t d_ = 1;
  std::uint64_t m_ = 0;
  std::uint64_t one_ = UINT64_MAX;  // all ones when d == 1, else 0
};

}  // namespace detail
}  // namespace proctopo
