// libFuzzer target: the HS256 verifier of SPEC section 2
// (hubnode::verify_jwt). Built and run by tests/fuzz/run.sh.
//
// The first byte picks a mode:
//   even: the rest is a raw token (structure, base64url, header checks);
//   odd:  the rest is "<header JSON>\n<payload JSON>", which this harness
//         encodes and signs with the right secret, so that the fuzzer also
//         reaches the claim checks (sub, exp, nbf) behind the signature.
#include "src/wire/jwt.hpp"

#include "src/base/user_id.hpp"
#include "tests/jwt_sign.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view secret = "fuzz-secret-fuzz-secret-fuzz-sec"; // 32 bytes
constexpr std::string_view other_secret = "another-secret-another-secret-an";
constexpr std::int64_t now = 1700000000;

void check(bool ok) {
  if (!ok)
    std::abort();
}

std::string sign(std::string_view header, std::string_view payload) {
  return hubnode::test::sign_jwt(header, payload, secret);
}

void check_identity(const std::optional<hubnode::jwt_identity>& id) {
  // Valid at `now` exactly when now < expires.
  if (id && id->expires)
    check(*id->expires > now);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0)
    return 0;
  std::string_view rest{reinterpret_cast<const char*>(data) + 1, size - 1};
  if ((data[0] & 1) == 0) {
    auto id = hubnode::verify_jwt(rest, secret, now);
    check_identity(id);
    // No token can carry a valid signature under two different secrets.
    if (id)
      check(!hubnode::verify_jwt(rest, other_secret, now));
    hubnode::verify_jwt(rest, {}, now); // an empty secret never verifies
    return 0;
  }
  auto newline = rest.find('\n');
  auto header = rest.substr(0, newline);
  auto payload =
      newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
  auto token = sign(header, payload);
  auto id = hubnode::verify_jwt(token, secret, now);
  check_identity(id);
  if (id) {
    check(!hubnode::verify_jwt(token, other_secret, now));
    // The same token one character shorter (signature truncated) is refused.
    check(!hubnode::verify_jwt(std::string_view{token}.substr(0, token.size() - 1),
                               secret, now));
  }
  return 0;
}
