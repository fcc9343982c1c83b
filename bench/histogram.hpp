// A log-linear latency histogram in the spirit of HdrHistogram: every power
// of two is split into 32 equal sub-buckets, so a recorded value costs one
// array increment and any percentile is within about 3% of the true value,
// however many millions of samples a run records. Nothing is sorted.
#pragma once

#include <array>
#include <cstdint>

#include <boost/json/object.hpp>

namespace bench {

class histogram {
public:
  void record(std::uint64_t value);
  void merge(const histogram& other);

  std::uint64_t count() const { return count_; }
  // The value below which `fraction` (0..1) of the samples lie: the highest
  // value of the bucket holding that sample (as HdrHistogram reports it).
  std::uint64_t percentile(double fraction) const;

  // {"count","mean","p50","p90","p99","p999","max"} with the values (recorded
  // in nanoseconds) divided by `divisor` (1000 gives microseconds).
  boost::json::object summary(double divisor) const;

private:
  static constexpr int sub_bits = 5;
  static constexpr int sub_count = 1 << sub_bits;
  static constexpr int bucket_count = sub_count + (64 - sub_bits) * sub_count;

  static int index_of(std::uint64_t value);
  static std::uint64_t highest_in(int index);

  std::array<std::uint64_t, bucket_count> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

} // namespace bench
