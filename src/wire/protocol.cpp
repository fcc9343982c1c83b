#include "src/base/log.hpp"

#include "src/wire/protocol.hpp"

#include "src/base/user_id.hpp"
#include "src/wire/channel_name.hpp"
#include "src/wire/json_member.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <fmt/format.h>
#include <iterator>

namespace hubnode::protocol {

namespace json = boost::json;

namespace {

constexpr const char* bad_request = "bad_request";
constexpr const char* unknown_type = "unknown_type";
constexpr const char* invalid_recipient = "invalid_recipient";
constexpr const char* bad_channel = "bad_channel";

// An unknown type is echoed back; a client must not be able to make the
// server repeat an arbitrarily long string.
constexpr std::size_t max_echoed_type = 64;

// ---- parsing --------------------------------------------------------------

bool is_continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// SPEC limits refs in characters, not bytes. The parser has validated UTF-8,
// so every byte that is not a continuation byte starts a code point.
std::size_t code_points(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return !is_continuation(c); }));
}

// Truncates at a code point boundary so the echo stays valid UTF-8, which a
// text frame must be.
std::string_view utf8_prefix(std::string_view s, std::size_t max_code_points) {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!is_continuation(s[i]) && seen++ == max_code_points)
      return s.substr(0, i);
  return s;
}

std::string_view view(const json::string& s) {
  return {s.data(), s.size()};
}

std::optional<user_id> user_id_of(const json::value* v) {
  auto* text = v ? v->if_string() : nullptr;
  return text ? parse_user_id(view(*text)) : std::nullopt;
}

bool fail(inbound& in, const char* code, std::string message) {
  in.type = inbound::kind::invalid;
  in.error_code = code;
  in.error_message = std::move(message);
  return false;
}

bool read_ref(const json::object& obj, inbound& in) {
  auto* field = obj.if_contains("ref");
  if (!field)
    return true;
  auto* ref = field->if_string();
  if (!ref || code_points(view(*ref)) > max_ref_length)
    return fail(
        in, bad_request,
        fmt::format("ref must be a string of at most {} characters", max_ref_length));
  in.ref.assign(ref->data(), ref->size());
  in.has_ref = true;
  return true;
}

struct request_type {
  std::string_view name;
  inbound::kind kind;
};

constexpr request_type request_types[] = {
    {"send", inbound::kind::send},
    {"presence", inbound::kind::presence},
    {"watch", inbound::kind::watch},
    {"unwatch", inbound::kind::unwatch},
    {"ping", inbound::kind::ping},
    {"subscribe", inbound::kind::subscribe},
    {"unsubscribe", inbound::kind::unsubscribe},
    {"publish", inbound::kind::publish},
};

bool read_type(const json::object& obj, inbound& in) {
  auto* field = obj.if_contains("type");
  auto* name = field ? field->if_string() : nullptr;
  if (!name)
    return fail(in, bad_request, "type must be a string");
  for (const auto& t : request_types) {
    if (t.name == view(*name)) {
      in.type = t.kind;
      return true;
    }
  }
  return fail(
      in, unknown_type,
      fmt::format("unknown type \"{}\"", utf8_prefix(view(*name), max_echoed_type)));
}

// `data` is taken from the frame's text, not from the parsed value: written
// again from that, numbers would lose digits (SPEC section 3, "Fidelity").
bool read_send(const json::object& obj, std::string_view text, inbound& in) {
  auto to = user_id_of(obj.if_contains("to"));
  if (!to)
    return fail(in, invalid_recipient, "to must be a user id string of decimal digits");
  auto data = member_text(text, "data");
  if (!data)
    return fail(in, bad_request, "data is required");
  in.to = *to;
  in.data.assign(data->data(), data->size());
  return true;
}

bool read_user_ids(const json::object& obj, inbound& in) {
  auto* field = obj.if_contains("userIds");
  auto* ids = field ? field->if_array() : nullptr;
  if (!ids)
    return fail(in, bad_request, "userIds must be an array of user id strings");
  if (ids->size() > max_user_ids)
    return fail(in, bad_request,
                fmt::format("userIds must have at most {} entries", max_user_ids));
  user_list users;
  users.reserve(ids->size());
  for (std::size_t i = 0; i < ids->size(); ++i) {
    auto id = user_id_of(&(*ids)[i]);
    if (!id)
      return fail(in, bad_request, fmt::format("userIds[{}] is not a valid user id", i));
    // "7" and "007" are one user; dropping repeats here spares every
    // consumer (watch counts, presence answers) from handling them.
    if (std::find(users.begin(), users.end(), *id) == users.end())
      users.push_back(*id);
  }
  in.user_ids = std::move(users);
  return true;
}

bool read_channel(const json::object& obj, inbound& in) {
  auto* field = obj.if_contains("channel");
  auto* name = field ? field->if_string() : nullptr;
  if (!name)
    return fail(in, bad_request, "channel must be a string");
  if (!valid_channel_name(view(*name)))
    return fail(in, bad_channel,
                "channel must be 1 to 128 characters of A-Z a-z 0-9 _ - . :");
  in.channel.assign(name->data(), name->size());
  return true;
}

std::optional<std::uint64_t> offset_of(const json::value* v) {
  if (!v)
    return std::nullopt;
  if (auto* u = v->if_uint64())
    return *u;
  if (auto* i = v->if_int64(); i && *i >= 0)
    return static_cast<std::uint64_t>(*i);
  return std::nullopt;
}

bool read_recover(const json::object& obj, inbound& in) {
  auto* field = obj.if_contains("recover");
  if (!field)
    return true;
  auto* position = field->if_object();
  auto offset = position ? offset_of(position->if_contains("offset")) : std::nullopt;
  auto* epoch_field = position ? position->if_contains("epoch") : nullptr;
  auto* epoch = epoch_field ? epoch_field->if_string() : nullptr;
  if (!offset || !epoch || epoch->empty())
    return fail(in, bad_request,
                "recover must be {\"offset\":N,\"epoch\":\"E\"} with N an integer >= 0");
  in.recover = stream_position{std::string{view(*epoch)}, *offset};
  return true;
}

bool read_publish(std::string_view text, inbound& in) {
  auto data = member_text(text, "data");
  if (!data)
    return fail(in, bad_request, "data is required");
  in.data.assign(data->data(), data->size());
  return true;
}

bool read_body(const json::object& obj, std::string_view text, inbound& in) {
  switch (in.type) {
  case inbound::kind::send:
    return read_send(obj, text, in);
  case inbound::kind::subscribe:
    return read_channel(obj, in) && read_recover(obj, in);
  case inbound::kind::unsubscribe:
    return read_channel(obj, in);
  case inbound::kind::publish:
    return read_channel(obj, in) && read_publish(text, in);
  case inbound::kind::presence:
  case inbound::kind::watch:
  case inbound::kind::unwatch:
    return read_user_ids(obj, in);
  case inbound::kind::ping:
  case inbound::kind::invalid:
    break;
  }
  return true;
}

// The ref comes first so that every later error can carry it.
void read_request(const json::object& obj, std::string_view text, inbound& in) {
  if (read_ref(obj, in) && read_type(obj, in))
    read_body(obj, text, in);
}

// Parses a client frame or an API body within max_depth and hands the
// value to `use`. Typical frames parse without touching the heap: the
// parser's scratch space and the parsed value both live on this stack frame.
template <class Use>
json::error_code parse_json(std::string_view text, Use&& use) {
  unsigned char scratch[512];
  unsigned char value_space[4096];
  json::monotonic_resource resource{value_space};
  json::parse_options options;
  options.max_depth = max_depth;
  json::parser parser{json::storage_ptr(), options, scratch};
  parser.reset(&resource);
  json::error_code ec;
  parser.write(text.data(), text.size(), ec);
  if (!ec)
    use(parser.release());
  return ec;
}

// ---- encoding -------------------------------------------------------------

void append_escaped(std::string& out, char c) {
  switch (c) {
  case '"':
    out += "\\\"";
    break;
  case '\\':
    out += "\\\\";
    break;
  case '\b':
    out += "\\b";
    break;
  case '\f':
    out += "\\f";
    break;
  case '\n':
    out += "\\n";
    break;
  case '\r':
    out += "\\r";
    break;
  case '\t':
    out += "\\t";
    break;
  default:
    fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
  }
}

// Bytes from 0x20 up pass through: JSON allows UTF-8 unescaped, and every
// string written here is UTF-8 already.
bool needs_escape(char c) {
  return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
}

// Copies runs of plain characters in one append each: ids, refs and user
// ids in every frame are plain, and a per-character append was a visible
// part of the cost of a message.
void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  auto plain = s.begin();
  for (auto i = s.begin(); i != s.end(); ++i) {
    if (!needs_escape(*i))
      continue;
    out.append(plain, i);
    append_escaped(out, *i);
    plain = i + 1;
  }
  out.append(plain, s.end());
  out += '"';
}

// Builds a JSON object field by field, in the order written. Hand-built
// rather than via json::object so that frames start with an exact `type`
// prefix and raw `data` is copied verbatim, without a re-parse.
class object_writer {
public:
  explicit object_writer(std::size_t capacity = 64) {
    out_.reserve(capacity);
    out_ += '{';
  }

  object_writer& string(std::string_view key, std::string_view value) {
    append_quoted(next(key), value);
    return *this;
  }

  object_writer& raw(std::string_view key, std::string_view json_text) {
    next(key) += json_text;
    return *this;
  }

  object_writer& boolean(std::string_view key, bool value) {
    return raw(key, value ? "true" : "false");
  }

  object_writer& number(std::string_view key, std::int64_t value) {
    fmt::format_to(std::back_inserter(next(key)), "{}", value);
    return *this;
  }

  object_writer& optional_string(std::string_view key, std::string_view value,
                                 bool present) {
    return present ? string(key, value) : *this;
  }

  object_writer& optional_number(std::string_view key,
                                 const std::optional<std::uint64_t>& value) {
    if (value)
      fmt::format_to(std::back_inserter(next(key)), "{}", *value);
    return *this;
  }

  object_writer& optional_boolean(std::string_view key,
                                  const std::optional<bool>& value) {
    return value ? boolean(key, *value) : *this;
  }

  std::string finish() {
    out_ += '}';
    return std::move(out_);
  }

private:
  std::string& next(std::string_view key) {
    if (!first_)
      out_ += ',';
    first_ = false;
    append_quoted(out_, key);
    out_ += ':';
    return out_;
  }

  std::string out_;
  bool first_ = true;
};

object_writer frame(std::string_view type, std::size_t capacity = 64) {
  object_writer w{capacity};
  w.string("type", type);
  return w;
}

} // namespace

inbound parse_request(std::string_view text) {
  inbound in;
  auto ec = parse_json(text, [&](const json::value& doc) {
    if (auto* obj = doc.if_object())
      read_request(*obj, text, in);
    else
      fail(in, bad_request, "message must be a JSON object");
  });
  if (ec)
    fail(in, bad_request,
         ec == json::error::too_deep
             ? fmt::format("JSON nested deeper than {} levels", max_depth)
             : std::string{"invalid JSON"});
  return in;
}

std::optional<std::string_view> api_message_data(std::string_view body) {
  bool is_object = false;
  auto ec =
      parse_json(body, [&](const json::value& doc) { is_object = doc.is_object(); });
  if (ec || !is_object)
    return std::nullopt;
  return member_text(body, "data");
}

std::string welcome(user_id user, std::string_view connection_id, std::string_view node,
                    const std::optional<stream_position>& position,
                    std::optional<bool> recovered) {
  auto w = frame("welcome")
               .string("userId", std::to_string(user))
               .string("connectionId", connection_id)
               .string("node", node);
  if (position)
    w.string("epoch", position->epoch).optional_number("offset", position->offset);
  return w.optional_boolean("recovered", recovered).finish();
}

namespace {

// The fields of an entry of a stream, a message's or a publication's.
std::string entry(object_writer& w, std::string_view id,
                  std::optional<std::uint64_t> offset, std::string_view from,
                  std::string_view data, std::int64_t ts_ms) {
  return w.string("id", id)
      .optional_number("offset", offset)
      .string("from", from)
      .raw("data", data)
      .number("ts", ts_ms)
      .finish();
}

} // namespace

std::string message(std::string_view id, std::string_view from, std::string_view data,
                    std::int64_t ts_ms, std::optional<std::uint64_t> offset) {
  // Sized up front: `data` may be most of a 64 KiB frame.
  auto w = frame("message", data.size() + 128);
  return entry(w, id, offset, from, data, ts_ms);
}

std::string ack(std::string_view ref, bool has_ref, std::string_view id, bool online) {
  // One frame per message sent: sized so that it is built in one allocation.
  return frame("ack", 48 + ref.size() + id.size())
      .optional_string("ref", ref, has_ref)
      .string("id", id)
      .boolean("online", online)
      .finish();
}

std::string pong(std::string_view ref, bool has_ref) {
  return frame("pong").optional_string("ref", ref, has_ref).finish();
}

std::string error(std::string_view code, std::string_view message, std::string_view ref,
                  bool has_ref) {
  return frame("error")
      .string("code", code)
      .string("message", message)
      .optional_string("ref", ref, has_ref)
      .finish();
}

std::string presence(const user_list& users, const user_list& online) {
  auto sorted_online = online;
  std::sort(sorted_online.begin(), sorted_online.end());
  object_writer map;
  user_list written;
  written.reserve(users.size());
  for (auto user : users) {
    // A repeated key would be ambiguous JSON; each user is answered once.
    if (std::find(written.begin(), written.end(), user) != written.end())
      continue;
    written.push_back(user);
    map.boolean(std::to_string(user),
                std::binary_search(sorted_online.begin(), sorted_online.end(), user));
  }
  return frame("presence").raw("users", map.finish()).finish();
}

std::string presence_changed(user_id user, bool online) {
  return frame("presence_changed")
      .string("userId", std::to_string(user))
      .boolean("online", online)
      .finish();
}

std::string subscribed(std::string_view channel, std::string_view ref, bool has_ref,
                       const stream_position& position, std::optional<bool> recovered) {
  return frame("subscribed")
      .string("channel", channel)
      .optional_string("ref", ref, has_ref)
      .string("epoch", position.epoch)
      .number("offset", static_cast<std::int64_t>(position.offset))
      .optional_boolean("recovered", recovered)
      .finish();
}

std::string unsubscribed(std::string_view channel, std::string_view ref, bool has_ref,
                         std::string_view reason) {
  return frame("unsubscribed")
      .string("channel", channel)
      .optional_string("ref", ref, has_ref)
      .string("reason", reason)
      .finish();
}

std::string published(std::string_view channel, std::string_view ref, bool has_ref,
                      std::string_view id, std::uint64_t offset) {
  return frame("published")
      .string("channel", channel)
      .optional_string("ref", ref, has_ref)
      .string("id", id)
      .number("offset", static_cast<std::int64_t>(offset))
      .finish();
}

namespace {

// The part of a publication frame both it and a history entry start with.
object_writer publication_head(std::string_view channel, std::size_t capacity = 64) {
  return std::move(frame("publication", capacity).string("channel", channel));
}

} // namespace

std::string publication(std::string_view channel, std::string_view id,
                        std::uint64_t offset, std::string_view from,
                        std::string_view data, std::int64_t ts_ms) {
  auto w = publication_head(channel, data.size() + channel.size() + 128);
  return entry(w, id, offset, from, data, ts_ms);
}

// A history entry is the publication frame without its type and channel:
// copied from the kept frame, so `data` stays as its publisher wrote it.
std::string history(std::string_view channel, const stream_position& top,
                    const std::vector<payload>& publications) {
  auto head = publication_head(channel).finish().size();
  std::string list = "[";
  for (const auto& p : publications) {
    if (list.size() > 1)
      list += ',';
    list += '{';
    list.append(*p, head, std::string::npos);
  }
  list += ']';
  return object_writer{list.size() + 128}
      .string("channel", channel)
      .string("epoch", top.epoch)
      .number("offset", static_cast<std::int64_t>(top.offset))
      .raw("publications", list)
      .finish();
}

std::string http_error(std::string_view code, std::string_view message,
                       std::string_view field) {
  return object_writer{}
      .string("error", code)
      .optional_string("field", field, !field.empty())
      .string("message", message)
      .finish();
}

} // namespace hubnode::protocol
