// Builds HS256 tokens for the tests and the fuzz target: the encoder side of
// what src/wire/jwt.cpp verifies, kept apart from it so a bug cannot hide in both.
#pragma once

#include <cstdint>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string>
#include <string_view>

namespace hubnode::test {

inline std::string base64url(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : bytes) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += alphabet[(bits >> count) & 0x3f];
    }
  }
  if (count > 0)
    out += alphabet[(bits << (6 - count)) & 0x3f];
  return out;
}

inline std::string hs256(std::string_view data, std::string_view key) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &size);
  return std::string(reinterpret_cast<char*>(mac), size);
}

// header.payload.signature, each part base64url, signed with `key`.
inline std::string sign_jwt(std::string_view header, std::string_view payload,
                            std::string_view key) {
  auto signed_part = base64url(header) + "." + base64url(payload);
  return signed_part + "." + base64url(hs256(signed_part, key));
}

} // namespace hubnode::test
