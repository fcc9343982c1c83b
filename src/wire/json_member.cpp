#include "src/base/log.hpp"

#include "src/wire/json_member.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace hubnode {

namespace {

using iter = const char*;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// What a skip through a container stops at: strings (which may hold
// brackets) and brackets. A table, as this runs for every byte of `data`.
constexpr auto structural = [] {
  std::array<bool, 256> table{};
  for (unsigned char c : {'"', '{', '}', '[', ']'})
    table[c] = true;
  return table;
}();

// Every skip below stops at `end`, so even text that is not JSON cannot make
// one read out of bounds.
iter skip_space(iter p, iter end) {
  while (p < end && is_space(*p))
    ++p;
  return p;
}

// From just past the opening quote to just past the closing one. memchr
// finds the quotes, which matters for long strings; one after an odd run of
// backslashes is escaped.
iter string_end(iter p, iter end) {
  auto begin = p;
  while (auto quote = static_cast<iter>(std::memchr(p, '"', end - p))) {
    auto run = quote;
    while (run > begin && run[-1] == '\\')
      --run;
    if ((quote - run) % 2 == 0)
      return quote + 1;
    p = quote + 1;
  }
  return end;
}

// From the opening bracket to just past the closing one. The text is
// valid, so counting the brackets outside strings suffices.
iter container_end(iter p, iter end) {
  std::size_t depth = 0;
  while (p < end) {
    auto c = *p++;
    if (!structural[static_cast<unsigned char>(c)])
      continue;
    if (c == '"')
      p = string_end(p, end);
    else if (c == '{' || c == '[')
      ++depth;
    else if (--depth == 0)
      return p;
  }
  return end;
}

// A number, true, false or null.
iter scalar_end(iter p, iter end) {
  while (p < end && !is_space(*p) && *p != ',' && *p != '}' && *p != ']')
    ++p;
  return p;
}

iter value_end(iter p, iter end) {
  if (p == end)
    return end;
  if (*p == '"')
    return string_end(p + 1, end);
  if (*p == '{' || *p == '[')
    return container_end(p, end);
  return scalar_end(p, end);
}

// The character the escape at `name[i]` (just past its backslash) stands
// for, with `i` moved past it; nothing for one beyond ASCII, which no ASCII
// key holds.
std::optional<char> unescape_ascii(std::string_view name, std::size_t& i) {
  switch (char c = name[i++]) {
  case 'b':
    return '\b';
  case 'f':
    return '\f';
  case 'n':
    return '\n';
  case 'r':
    return '\r';
  case 't':
    return '\t';
  case 'u': {
    unsigned code = 0x80;
    auto digits = name.substr(i, 4);
    std::from_chars(digits.data(), digits.data() + digits.size(), code, 16);
    i += digits.size();
    return code < 0x80 ? std::optional<char>{static_cast<char>(code)} : std::nullopt;
  }
  default: // '"', '\\' and '/' stand for themselves
    return c;
  }
}

// Whether the member name written as `name` (between its quotes) is `key`.
bool name_is(std::string_view name, std::string_view key) {
  if (name.find('\\') == std::string_view::npos)
    return name == key;
  std::size_t matched = 0;
  for (std::size_t i = 0; i < name.size(); ++matched) {
    std::optional<char> c = name[i++];
    if (*c == '\\' && i < name.size())
      c = unescape_ascii(name, i);
    if (!c || matched == key.size() || key[matched] != *c)
      return false;
  }
  return matched == key.size();
}

} // namespace

std::optional<std::string_view> member_text(std::string_view object,
                                            std::string_view key) {
  std::optional<std::string_view> found;
  auto end = object.data() + object.size();
  auto p = skip_space(object.data(), end);
  if (p == end || *p != '{')
    return std::nullopt;
  p = skip_space(p + 1, end);
  while (p < end && *p == '"') {
    auto name_end = string_end(p + 1, end);
    // Without the quotes; empty when the text ends before the closing one.
    std::string_view name{
        p + 1, static_cast<std::size_t>(std::max<std::ptrdiff_t>(name_end - p - 2, 0))};
    p = skip_space(name_end, end);
    p = skip_space(p == end ? end : p + 1, end); // the colon
    auto value = p;
    p = value_end(p, end);
    if (name_is(name, key))
      found = std::string_view{value, static_cast<std::size_t>(p - value)};
    p = skip_space(p, end);
    if (p < end && *p == ',')
      p = skip_space(p + 1, end);
  }
  return found;
}

} // namespace hubnode
