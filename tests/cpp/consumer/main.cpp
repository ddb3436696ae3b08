#include <proctopo/topology.hpp>

#include <iostream>

int main() {
  const proctopo::topology t({"pipe", "data", "model"}, {8, 16384, 8});
  const auto c = t.coord_of(t.world_size() - 1);
  std::cout << t.describe() << " last=" << c[0] << ',' << c[1] << ',' << c[2] << '\n';
  return (c[0] == 7 && c[1] == 16383 && c[2] == 7) ? 0 : 1;
}
