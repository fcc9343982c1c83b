#include "src/base/log.hpp"

#include "src/wire/jwt.hpp"
#include "tests/jwt_sign.hpp"

#include <doctest/doctest.h>
#include <string>

using hubnode::verify_jwt;

namespace {

const std::string secret = "0123456789abcdef0123456789abcdef-test";
constexpr std::int64_t now = 1700000000;

using hubnode::test::base64url;

std::string hs256(std::string_view data, std::string_view key = secret) {
  return hubnode::test::hs256(data, key);
}

std::string token(std::string_view payload,
                  std::string_view header = R"({"alg":"HS256","typ":"JWT"})",
                  std::string_view key = secret) {
  return hubnode::test::sign_jwt(header, payload, key);
}

} // namespace

TEST_CASE("jwt: a valid token gives its sub as the user") {
  auto id = verify_jwt(token(R"({"sub":"42"})"), secret, now);
  REQUIRE(id);
  CHECK(id->user == 42u);
  CHECK(!id->expires);
  CHECK(verify_jwt(token(R"({"sub":"42"})", R"({"alg":"HS256"})"), secret, now));
}

TEST_CASE("jwt: the signature must match the secret") {
  auto t = token(R"({"sub":"42"})");
  CHECK(!verify_jwt(t, secret + "x", now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"({"alg":"HS256"})", "another-secret"),
                    secret, now));
  auto tampered = t;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  CHECK(!verify_jwt(tampered, secret, now));
  // a payload swapped under a valid signature
  auto dot = t.find('.');
  auto forged =
      t.substr(0, dot + 1) + base64url(R"({"sub":"1"})") + t.substr(t.rfind('.'));
  CHECK(!verify_jwt(forged, secret, now));
  CHECK(!verify_jwt(t.substr(0, t.rfind('.') + 1), secret, now));
  CHECK(!verify_jwt(t, "", now));
}

TEST_CASE("jwt: only alg HS256 is accepted") {
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"({"alg":"none"})"), secret, now));
  auto unsigned_token =
      base64url(R"({"alg":"none"})") + "." + base64url(R"({"sub":"42"})") + ".";
  CHECK(!verify_jwt(unsigned_token, secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"({"alg":"HS512"})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"({"alg":"hs256"})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"({"typ":"JWT"})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"({"alg":null})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"({"alg":"HS256","crit":["exp"]})"), secret,
                    now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", R"(["HS256"])"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42"})", "not json"), secret, now));
}

TEST_CASE("jwt: strict base64url") {
  auto t = token(R"({"sub":"42"})");
  CHECK(verify_jwt(t, secret, now));
  // the signature (32 bytes) encodes to 43 characters: padding is refused
  CHECK(!verify_jwt(t + "=", secret, now));
  // a header that needs padding, with it
  auto header = base64url(R"({"alg":"HS256"})"); // 15 bytes -> 20 chars, no padding
  auto payload = base64url(R"({"sub":"42"} )");  // 13 bytes -> 18 chars
  auto signed_part = header + "." + payload + "==";
  CHECK(!verify_jwt(signed_part + "." + base64url(hs256(signed_part)), secret, now));
  // '+' and '/' (standard base64) instead of '-' and '_'
  for (char bad : {'+', '/', ' ', '.', '\0'}) {
    auto s = t;
    s[s.size() - 1] = bad;
    CHECK(!verify_jwt(s, secret, now));
  }
  auto p = base64url(R"({"sub":"42","x":"??>??>"})");
  CHECK(p.find_first_of("-_") != std::string::npos);
  auto with_std = p;
  for (auto& c : with_std)
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  auto h = base64url(R"({"alg":"HS256"})");
  CHECK(verify_jwt(h + "." + p + "." + base64url(hs256(h + "." + p)), secret, now));
  CHECK(!verify_jwt(h + "." + with_std + "." + base64url(hs256(h + "." + with_std)),
                    secret, now));
  // non-canonical trailing bits: the last signature character with its
  // unused low bits set decodes to the same bytes, and is refused
  auto sig = t.substr(t.rfind('.') + 1);
  REQUIRE(sig.size() == 43);
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto last = alphabet.find(sig.back());
  auto noncanonical = t.substr(0, t.size() - 1) + alphabet[last | 1];
  CHECK(!verify_jwt(noncanonical, secret, now));
}

TEST_CASE("jwt: exactly three segments") {
  auto t = token(R"({"sub":"42"})");
  CHECK(!verify_jwt("", secret, now));
  CHECK(!verify_jwt(t.substr(0, t.rfind('.')), secret, now));
  CHECK(!verify_jwt(t + ".", secret, now));
  CHECK(!verify_jwt(t + "." + t.substr(t.rfind('.') + 1), secret, now));
  CHECK(!verify_jwt("..", secret, now));
}

TEST_CASE("jwt: exp and nbf") {
  CHECK(!verify_jwt(token(R"({"sub":"42","exp":1699999999})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42","exp":1700000000})"), secret, now));
  auto id = verify_jwt(token(R"({"sub":"42","exp":1700000060})"), secret, now);
  REQUIRE(id);
  CHECK(id->expires == 1700000060);
  auto fractional = verify_jwt(token(R"({"sub":"42","exp":1700000000.5})"), secret, now);
  REQUIRE(fractional);
  CHECK(fractional->expires == 1700000001);
  CHECK(!verify_jwt(token(R"({"sub":"42","exp":1699999999.5})"), secret, now));
  CHECK(verify_jwt(token(R"({"sub":"42","exp":1.8e9})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42","exp":"1800000000"})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42","exp":null})"), secret, now));
  auto far = verify_jwt(token(R"({"sub":"42","exp":1e300})"), secret, now);
  REQUIRE(far);
  CHECK(*far->expires > now);
  CHECK(verify_jwt(token(R"({"sub":"42","nbf":1700000000})"), secret, now));
  CHECK(verify_jwt(token(R"({"sub":"42","nbf":1600000000})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42","nbf":1700000001})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"42","nbf":"0"})"), secret, now));
}

TEST_CASE("jwt: sub follows the userId rule") {
  CHECK(!verify_jwt(token(R"({})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":42})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"abc"})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"-1"})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":""})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":" 1"})"), secret, now));
  CHECK(!verify_jwt(token(R"({"sub":"18446744073709551616"})"), secret, now));
  CHECK(!verify_jwt(token(R"(["sub","42"])"), secret, now));
  auto max = verify_jwt(token(R"({"sub":"18446744073709551615"})"), secret, now);
  REQUIRE(max);
  CHECK(max->user == 18446744073709551615u);
  auto padded = verify_jwt(token(R"({"sub":"007"})"), secret, now);
  REQUIRE(padded);
  CHECK(padded->user == 7u);
}

TEST_CASE("jwt: tokens over 8 KiB are refused") {
  auto fits = token(R"({"sub":"42","pad":")" + std::string(5000, 'x') + "\"}");
  CHECK(fits.size() <= 8192);
  CHECK(verify_jwt(fits, secret, now));
  auto big = token(R"({"sub":"42","pad":")" + std::string(6500, 'x') + "\"}");
  CHECK(big.size() > 8192);
  CHECK(!verify_jwt(big, secret, now));
}

TEST_CASE("jwt: the channels claim lists the channels; no claim, none") {
  auto with =
      verify_jwt(token(R"({"sub":"1","channels":["room:*","lobby"]})"), secret, now);
  REQUIRE(with);
  REQUIRE(bool(with->channels));
  CHECK((*with->channels == std::vector<std::string>{"room:*", "lobby"}));
  for (auto payload : {R"({"sub":"1"})", R"({"sub":"1","channels":"*"})",
                       R"({"sub":"1","channels":["*",7]})"}) {
    CAPTURE(payload);
    auto none = verify_jwt(token(payload), secret, now);
    REQUIRE(none);
    REQUIRE(bool(none->channels));
    CHECK(none->channels->empty());
  }
}
