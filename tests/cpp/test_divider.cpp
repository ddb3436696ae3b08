#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <random>

#include "divider.hpp"

using proctopo::detail::divider;

TEST(Divider, SmallNumeratorsAndDivisorsExhaustive) {
  for (std::uint64_t d = 1; d <= 300; ++d) {
    const divider dv(d);
    for (std::uint64_t n = 0; n <= 5000; ++n) {
      ASSERT_EQ(dv.div32(n), n / d) << n << " / " << d;
    }
  }
}

TEST(Divider, EdgesOf32BitRange) {
  const std::uint64_t max32 = 0xFFFFFFFFull;
  std::mt19937_64 rng(12345);
  for (std::uint64_t d : std::initializer_list<std::uint64_t>{1ull, 2ull, 3ull, 7ull, 641ull, 65535ull, 65536ull, 65537ull, 1000003ull,
                          max32 - 1, max32, max32 + 1}) {
    const divider dv(d);
    for (std::uint64_t n : std::initializer_list<std::uint64_t>{0ull, 1ull, d - 1, d, d + 1, max32 - 1, max32}) {
      EXPECT_EQ(dv.div32(n), n / d) << n << " / " << d;
    }
    for (int k = 0; k < 20000; ++k) {
      const std::uint64_t n = rng() & max32;
      ASSERT_EQ(dv.div32(n), n / d) << n << " / " << d;
    }
  }
}

TEST(Divider, RandomDivisors) {
  std::mt19937_64 rng(7);
  for (int t = 0; t < 2000; ++t) {
    const std::uint64_t d = (rng() & 0xFFFFFFFFull) | 1u;
    const divider dv(d);
    for (int k = 0; k < 200; ++k) {
      const std::uint64_t n = rng() & 0xFFFFFFFFull;
      ASSERT_EQ(dv.div32(n), n / d) << n << " / " << d;
      ASSERT_EQ(dv.div64(n << 20), (n << 20) / d);
    }
  }
}
