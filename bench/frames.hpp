// The protocol frames of SPEC section 3 as the benchmark writes and reads
// them. Hot frames (send, message, ack) are written with to_chars and read by
// scanning for the fields the node writes in a fixed order, so the message
// path allocates nothing and parses no JSON tree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

// What a benchmark message carries in its `data`: the sending slot, its
// sequence number towards this receiver, and the send time (nanoseconds on
// this process's steady clock; for an open loop the scheduled time).
struct probe {
  std::uint64_t sender;
  std::uint64_t seq;
  std::int64_t sent_ns;
};

// Whether `frame` is of this type (the node writes `type` first).
bool is_type(std::string_view frame, std::string_view type);

// Replaces `out` with {"type":"send","to":"TO","data":{...probe..., "p":PADDING}}.
void write_send(std::string& out, std::uint64_t to, const probe& p, std::size_t padding);

// Replaces `out` with {"type":"publish","channel":"C","ref":"SEQ","data":{...probe...}}:
// the `published` answer and an `error` carry the probe's sequence as ref.
void write_publish(std::string& out, std::string_view channel, const probe& p,
                   std::size_t padding);
// {"type":"subscribe","channel":"C"}
std::string subscribe(std::string_view channel);

// The probe in a `message` frame, or nullopt if it carries none.
std::optional<probe> read_probe(std::string_view message);

// The unsigned number after the first `key` (quoted name and colon, e.g.
// R"("offset":)") in `frame`, or nullopt. The node writes a frame's own
// fields before its `data`, so the first one is the frame's.
std::optional<std::uint64_t> read_number(std::string_view frame, std::string_view key);
// The string after the first `key` (quoted name, colon and opening quote,
// e.g. R"("epoch":")") up to the next quote: epochs, codes and refs hold no
// escapes.
std::optional<std::string_view> read_string(std::string_view frame, std::string_view key);

// Whether an `ack` frame says the recipient was offline.
bool ack_offline(std::string_view ack);

// {"type":"ping","ref":"REF"}
std::string ping(std::string_view ref);
// {"type":"watch"|"presence","userIds":[...]} for ids [first, first + count).
std::string user_list_request(std::string_view type, std::uint64_t first,
                              std::uint64_t count);

} // namespace bench
