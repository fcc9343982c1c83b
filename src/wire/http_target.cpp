#include "src/wire/http_target.hpp"

namespace hubnode {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// The byte of the escape "%XX" at text[at], or -1 when there is none.
int escaped_byte(std::string_view text, std::size_t at) {
  if (text[at] != '%' || at + 2 >= text.size())
    return -1;
  auto high = hex_value(text[at + 1]);
  auto low = hex_value(text[at + 2]);
  return high < 0 || low < 0 ? -1 : high * 16 + low;
}

// Both decodings: `form` turns '+' into a space and keeps a broken escape
// verbatim; without it a broken escape fails the whole text.
std::optional<std::string> decode(std::string_view text, bool form) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (auto byte = escaped_byte(text, i); byte >= 0) {
      out += static_cast<char>(byte);
      i += 2;
    } else if (text[i] == '%' && !form) {
      return std::nullopt;
    } else {
      out += form && text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

} // namespace

std::string url_decode(std::string_view text) {
  return *decode(text, true);
}

std::optional<std::string> percent_decode(std::string_view text) {
  return decode(text, false);
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  auto mark = target.find('?');
  if (mark == std::string_view::npos)
    return std::nullopt;
  auto query = target.substr(mark + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (url_decode(pair.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string{}
                                          : url_decode(pair.substr(eq + 1));
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
  }
  return std::nullopt;
}

} // namespace hubnode
