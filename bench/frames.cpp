#include "bench/frames.hpp"

#include <charconv>

namespace bench {

namespace {

void append_number(std::string& out, std::int64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

// Reads the number right after `key` at the front of `text`, moving past it.
template <class Int>
bool take_number(std::string_view& text, std::string_view key, Int& value) {
  if (text.substr(0, key.size()) != key)
    return false;
  text.remove_prefix(key.size());
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{})
    return false;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return true;
}

// Appends {"c":SENDER,"s":SEQ,"t":NS[,"p":"xx..."]}.
void append_probe(std::string& out, const probe& p, std::size_t padding) {
  out.append(R"({"c":)");
  append_number(out, static_cast<std::int64_t>(p.sender));
  out.append(R"(,"s":)");
  append_number(out, static_cast<std::int64_t>(p.seq));
  out.append(R"(,"t":)");
  append_number(out, p.sent_ns);
  if (padding > 0) {
    out.append(R"(,"p":")");
    out.append(padding, 'x');
    out.push_back('"');
  }
  out.push_back('}');
}

} // namespace

bool is_type(std::string_view frame, std::string_view type) {
  constexpr std::string_view head = R"({"type":")";
  return frame.size() > head.size() + type.size() &&
         frame.substr(0, head.size()) == head &&
         frame.substr(head.size(), type.size()) == type &&
         frame[head.size() + type.size()] == '"';
}

void write_send(std::string& out, std::uint64_t to, const probe& p, std::size_t padding) {
  out.assign(R"({"type":"send","to":")");
  append_number(out, static_cast<std::int64_t>(to));
  out.append(R"(","data":)");
  append_probe(out, p, padding);
  out.push_back('}');
}

void write_publish(std::string& out, std::string_view channel, const probe& p,
                   std::size_t padding) {
  out.assign(R"({"type":"publish","channel":")");
  out.append(channel);
  out.append(R"(","ref":")");
  append_number(out, static_cast<std::int64_t>(p.seq));
  out.append(R"(","data":)");
  append_probe(out, p, padding);
  out.push_back('}');
}

std::string subscribe(std::string_view channel) {
  return R"({"type":"subscribe","channel":")" + std::string(channel) + R"("})";
}

std::optional<probe> read_probe(std::string_view message) {
  // `data` is delivered byte for byte, so it reads as write_send wrote it.
  const auto at = message.find(R"("data":{"c":)");
  if (at == std::string_view::npos)
    return std::nullopt;
  auto rest = message.substr(at + 8);
  probe p{};
  if (take_number(rest, R"("c":)", p.sender) && take_number(rest, R"(,"s":)", p.seq) &&
      take_number(rest, R"(,"t":)", p.sent_ns))
    return p;
  return std::nullopt;
}

std::optional<std::uint64_t> read_number(std::string_view frame, std::string_view key) {
  const auto at = frame.find(key);
  if (at == std::string_view::npos)
    return std::nullopt;
  auto rest = frame.substr(at);
  std::uint64_t value = 0;
  if (take_number(rest, key, value))
    return value;
  return std::nullopt;
}

std::optional<std::string_view> read_string(std::string_view frame,
                                            std::string_view key) {
  const auto at = frame.find(key);
  if (at == std::string_view::npos)
    return std::nullopt;
  const auto start = at + key.size();
  const auto end = frame.find('"', start);
  if (end == std::string_view::npos)
    return std::nullopt;
  return frame.substr(start, end - start);
}

bool ack_offline(std::string_view ack) {
  return ack.find(R"("online":false)") != std::string_view::npos;
}

std::string ping(std::string_view ref) {
  return R"({"type":"ping","ref":")" + std::string(ref) + R"("})";
}

std::string user_list_request(std::string_view type, std::uint64_t first,
                              std::uint64_t count) {
  std::string out = R"({"type":")" + std::string(type) + R"(","userIds":[)";
  for (std::uint64_t i = 0; i < count; ++i) {
    out.append(i ? ",\"" : "\"");
    append_number(out, static_cast<std::int64_t>(first + i));
    out.push_back('"');
  }
  out.append("]}");
  return out;
}

} // namespace bench
