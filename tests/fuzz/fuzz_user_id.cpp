// libFuzzer target: the userId rule of SPEC section 2
// (hubnode::parse_user_id), checked against std::from_chars and a
// canonical-form round trip. Built and run by tests/fuzz/run.sh.
#include "src/base/user_id.hpp"

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

void check(bool ok) {
  if (!ok)
    std::abort();
}

// The rule restated independently: digits only, at least one, fits in 64 bits.
std::optional<std::uint64_t> reference(std::string_view text) {
  if (text.empty())
    return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9')
      return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto got = hubnode::parse_user_id(text);
  check(got == reference(text));
  if (got) {
    // Canonicalised: "007" is user 7, and printing it back parses to itself.
    auto canonical = std::to_string(*got);
    auto digits = text.substr(std::min(text.find_first_not_of('0'), text.size()));
    check(canonical == (digits.empty() ? std::string_view{"0"} : digits));
    check(hubnode::parse_user_id(canonical) == got);
  }
  return 0;
}
