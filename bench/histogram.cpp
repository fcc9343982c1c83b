#include "bench/histogram.hpp"

#include "bench/rounded.hpp"

#include <algorithm>
#include <cmath>

namespace bench {

int histogram::index_of(std::uint64_t value) {
  if (value < sub_count)
    return static_cast<int>(value);
  const int exponent = 63 - __builtin_clzll(value); // >= sub_bits
  const int shift = exponent - sub_bits;
  const auto mantissa = static_cast<int>((value >> shift) - sub_count);
  return sub_count + shift * sub_count + mantissa;
}

std::uint64_t histogram::highest_in(int index) {
  if (index < sub_count)
    return static_cast<std::uint64_t>(index);
  const int shift = (index - sub_count) / sub_count;
  const auto mantissa = static_cast<std::uint64_t>((index - sub_count) % sub_count);
  const std::uint64_t lowest = (sub_count + mantissa) << shift;
  return lowest + ((std::uint64_t{1} << shift) - 1);
}

void histogram::record(std::uint64_t value) {
  ++buckets_[static_cast<std::size_t>(index_of(value))];
  ++count_;
  max_ = std::max(max_, value);
  sum_ += value;
}

void histogram::merge(const histogram& other) {
  for (std::size_t i = 0; i < buckets_.size(); ++i)
    buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

std::uint64_t histogram::percentile(double fraction) const {
  if (count_ == 0)
    return 0;
  // The rank of the sample sought, 1-based: p99 of 1000 samples is the 990th.
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank)
      return std::min(highest_in(static_cast<int>(i)), max_);
  }
  return max_;
}

boost::json::object histogram::summary(double divisor) const {
  // One decimal is finer than the histogram's own resolution.
  const auto scaled = [divisor](long double v) {
    return rounded(static_cast<double>(v) / divisor);
  };
  boost::json::object out;
  out["count"] = count_;
  out["mean"] = count_ ? scaled(sum_ / count_) : 0.0;
  out["p50"] = scaled(percentile(0.50));
  out["p90"] = scaled(percentile(0.90));
  out["p99"] = scaled(percentile(0.99));
  out["p999"] = scaled(percentile(0.999));
  out["max"] = scaled(max_);
  return out;
}

} // namespace bench
