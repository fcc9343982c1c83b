// libFuzzer target: the client-frame decoder of SPEC section 3
// (hubnode::protocol::parse_request) and the error frame built from its
// result. Built and run by tests/fuzz/run.sh.
#include "src/wire/channel_name.hpp"
#include "src/wire/protocol.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

namespace json = boost::json;

void check(bool ok) {
  if (!ok)
    std::abort();
}

std::string_view view(const json::string& s) {
  return {s.data(), s.size()};
}

// What the node accepts may nest protocol::max_depth deep; a server frame
// wraps it in one more object.
json::value parse_json(std::string_view text, json::error_code& ec,
                       std::size_t max_depth = hubnode::protocol::max_depth + 1) {
  json::parse_options options;
  options.max_depth = max_depth;
  return json::parse(text, ec, {}, options);
}

json::object parse_frame(const std::string& text) {
  json::error_code ec;
  auto value = parse_json(text, ec);
  check(!ec && value.is_object());
  return value.as_object();
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// `data` is forwarded as the sender wrote it (SPEC section 3, "Fidelity"):
// it must be a piece of the frame without the whitespace around it, a JSON
// value on its own, and equal to the `data` member a parser sees in the
// frame (the last one when it repeats).
bool carries_member(std::string_view frame, std::string_view carried) {
  if (carried.empty() || is_space(carried.front()) || is_space(carried.back()) ||
      frame.find(carried) == std::string_view::npos)
    return false;
  json::error_code value_ec;
  json::error_code frame_ec;
  auto value = parse_json(carried, value_ec);
  auto whole = parse_json(frame, frame_ec);
  auto* object = whole.if_object();
  auto* member = object ? object->if_contains("data") : nullptr;
  // Compared as text: Boost.JSON reads some valid numbers (0e400) as NaN,
  // which equals nothing, not even itself.
  return !value_ec && !frame_ec && member &&
         json::serialize(value) == json::serialize(*member);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using hubnode::inbound;
  namespace protocol = hubnode::protocol;
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto in = protocol::parse_request(text);

  // Exactly one of "a request" and "an error with a code and a message".
  if (in.type == inbound::kind::invalid) {
    check(!in.error_code.empty() && !in.error_message.empty());
    check(in.error_code == "bad_request" || in.error_code == "unknown_type" ||
          in.error_code == "invalid_recipient" || in.error_code == "bad_channel");
  } else {
    check(in.error_code.empty() && in.error_message.empty());
  }
  check(in.has_ref || in.ref.empty());
  // At most 64 code points of at most 4 bytes each.
  check(in.ref.size() <= protocol::max_ref_length * 4);
  check(in.user_ids.size() <= protocol::max_user_ids);
  auto ids = in.user_ids;
  std::sort(ids.begin(), ids.end());
  check(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
  if (in.type == inbound::kind::send || in.type == inbound::kind::publish)
    check(carries_member(text, in.data));
  auto channel_kind = in.type == inbound::kind::subscribe ||
                      in.type == inbound::kind::unsubscribe ||
                      in.type == inbound::kind::publish;
  check(in.type == inbound::kind::invalid || channel_kind == !in.channel.empty());
  check(!in.channel.empty() == hubnode::valid_channel_name(in.channel));
  check(!in.recover || in.type == inbound::kind::subscribe);
  auto api_data = protocol::api_message_data(text);
  json::error_code ec;
  auto doc = parse_json(text, ec, protocol::max_depth); // the API body's limit
  auto* obj = ec ? nullptr : doc.if_object();
  check(api_data.has_value() == (obj && obj->contains("data")));
  if (api_data)
    check(carries_member(text, *api_data));

  // Whatever the frame held, the answer the node sends back (error frame with
  // the echoed ref and message, or a message frame carrying `data`) is valid
  // JSON and carries the strings unchanged.
  if (in.type == inbound::kind::invalid) {
    auto frame =
        parse_frame(protocol::error(in.error_code, in.error_message, in.ref, in.has_ref));
    check(view(frame.at("code").as_string()) == in.error_code);
    check(view(frame.at("message").as_string()) == in.error_message);
    check(frame.contains("ref") == in.has_ref);
    if (in.has_ref)
      check(view(frame.at("ref").as_string()) == in.ref);
  } else if (in.type == inbound::kind::send) {
    auto frame = parse_frame(protocol::message("id-1", "42", in.data, 1));
    check(frame.contains("data"));
  } else if (in.type == inbound::kind::publish) {
    auto frame =
        parse_frame(protocol::publication(in.channel, "id-1", 1, "42", in.data, 1));
    check(view(frame.at("channel").as_string()) == in.channel);
  } else if (channel_kind) {
    auto position = in.recover.value_or(hubnode::stream_position{"e", 0});
    auto frame = parse_frame(protocol::subscribed(in.channel, in.ref, in.has_ref,
                                                  position, in.recover.has_value()));
    check(view(frame.at("epoch").as_string()) == position.epoch);
  } else if (in.type == inbound::kind::ping) {
    parse_frame(protocol::pong(in.ref, in.has_ref));
  } else {
    parse_frame(protocol::presence(in.user_ids, in.user_ids));
  }
  return 0;
}
