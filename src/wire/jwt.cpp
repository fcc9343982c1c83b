#include "src/base/log.hpp"
#define CAF_LOG_COMPONENT "http"

#include "src/wire/jwt.hpp"

#include "src/base/user_id.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <memory>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string>

namespace hubnode {

namespace json = boost::json;

namespace {

// Larger tokens are refused before any work is done on them.
constexpr std::size_t max_token_size = 8 * 1024;
constexpr std::size_t signature_size = 32; // HMAC-SHA256

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

// Strict base64url (RFC 7515 section 2): the URL-safe alphabet only, no
// padding, and the unused bits of the last character zero, so that every
// byte string has exactly one encoding.
std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1)
    return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    auto value = base64url_value(c);
    if (value < 0)
      return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  // 2 or 4 bits are left over after a partial group; they must be zero.
  if ((bits & ((1u << count) - 1)) != 0)
    return std::nullopt;
  return out;
}

std::optional<json::object> parse_object(std::string_view text) {
  json::error_code ec;
  auto value = json::parse(text, ec);
  if (ec || !value.is_object())
    return std::nullopt;
  return std::move(value.as_object());
}

std::optional<double> number_of(const json::value& value) {
  double result = 0;
  if (value.is_int64())
    result = static_cast<double>(value.get_int64());
  else if (value.is_uint64())
    result = static_cast<double>(value.get_uint64());
  else if (value.is_double())
    result = value.get_double();
  else
    return std::nullopt;
  if (!std::isfinite(result))
    return std::nullopt;
  return result;
}

bool header_ok(const json::object& header) {
  auto alg = header.if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256")
    return false;
  // Extensions this verifier does not understand must not be ignored.
  return !header.contains("crit");
}

bool signature_ok(std::string_view signed_part, std::string_view signature,
                  std::string_view secret) {
  if (signature.size() != signature_size || secret.empty())
    return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(),
           mac, &mac_size) == nullptr ||
      mac_size != signature_size)
    return false;
  return CRYPTO_memcmp(mac, signature.data(), signature_size) == 0;
}

// Never null: in jwt mode, no claim means no channels.
channel_grants channels_of(const json::object& payload) {
  auto grants = std::make_shared<std::vector<std::string>>();
  auto claim = payload.if_contains("channels");
  auto list = claim ? claim->if_array() : nullptr;
  if (list && std::all_of(list->begin(), list->end(),
                          [](const json::value& v) { return v.is_string(); }))
    for (auto& v : *list)
      grants->emplace_back(v.get_string());
  return grants;
}

} // namespace

std::optional<jwt_identity> verify_jwt(std::string_view token, std::string_view secret,
                                       std::int64_t now) {
  if (token.size() > max_token_size)
    return std::nullopt;
  auto first = token.find('.');
  if (first == std::string_view::npos)
    return std::nullopt;
  auto second = token.find('.', first + 1);
  if (second == std::string_view::npos ||
      token.find('.', second + 1) != std::string_view::npos)
    return std::nullopt;
  auto header_text = base64url_decode(token.substr(0, first));
  auto payload_text = base64url_decode(token.substr(first + 1, second - first - 1));
  auto signature = base64url_decode(token.substr(second + 1));
  if (!header_text || !payload_text || !signature)
    return std::nullopt;
  auto header = parse_object(*header_text);
  if (!header || !header_ok(*header))
    return std::nullopt;
  if (!signature_ok(token.substr(0, second), *signature, secret))
    return std::nullopt;
  auto payload = parse_object(*payload_text);
  if (!payload)
    return std::nullopt;
  auto sub = payload->if_contains("sub");
  if (sub == nullptr || !sub->is_string())
    return std::nullopt;
  auto user = parse_user_id(std::string_view{sub->get_string()});
  if (!user)
    return std::nullopt;
  jwt_identity result;
  result.user = *user;
  result.channels = channels_of(*payload);
  auto current = static_cast<double>(now);
  if (auto nbf = payload->if_contains("nbf")) {
    auto when = number_of(*nbf);
    if (!when || *when > current)
      return std::nullopt;
  }
  if (auto exp = payload->if_contains("exp")) {
    auto when = number_of(*exp);
    if (!when || *when <= current)
      return std::nullopt;
    // Whole seconds, rounded up: valid at `now` exactly when now < expires.
    // Far-future values are capped well inside 64 bits.
    constexpr double cap = 1e15;
    result.expires = static_cast<std::int64_t>(std::ceil(std::min(*when, cap)));
  }
  return result;
}

} // namespace hubnode
