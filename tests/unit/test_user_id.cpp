#include "src/base/log.hpp"

#include "src/base/user_id.hpp"

#include <doctest/doctest.h>

using hubnode::parse_user_id;

TEST_CASE("user id: accepts decimal digits up to 2^64-1") {
  CHECK(parse_user_id("0") == 0u);
  CHECK(parse_user_id("42") == 42u);
  CHECK(parse_user_id("18446744073709551615") == 18446744073709551615u);
  CHECK(parse_user_id("18446744073709551610") == 18446744073709551610u);
}

TEST_CASE("user id: leading zeros are canonicalised") {
  CHECK(parse_user_id("007") == 7u);
  CHECK(parse_user_id("000") == 0u);
  CHECK(parse_user_id("000018446744073709551615") == 18446744073709551615u);
}

TEST_CASE("user id: rejects anything else") {
  for (const char* text : {"", "abc", "-1", "+1", " 1", "1 ", "0x1", "1.0", "1e3", "١",
                           "4a", "18446744073709551616", "18446744073709551620",
                           "99999999999999999999999", "184467440737095516150"}) {
    CAPTURE(text);
    CHECK_FALSE(parse_user_id(text).has_value());
  }
}

TEST_CASE("user id: an embedded NUL is not a digit") {
  using namespace std::string_view_literals;
  CHECK_FALSE(parse_user_id("1\0"sv).has_value());
}
