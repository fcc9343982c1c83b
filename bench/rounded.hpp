// Rounding for reports, so that results do not show noise digits.
#pragma once

#include <cmath>

namespace bench {

inline double rounded(double x, int decimals = 1) {
  const double scale = std::pow(10.0, decimals);
  return std::round(x * scale) / scale;
}

} // namespace bench
