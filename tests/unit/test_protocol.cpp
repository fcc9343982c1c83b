#include "src/base/log.hpp"

#include "src/base/clock.hpp"
#include "src/wire/protocol.hpp"

#include <boost/json.hpp>
#include <chrono>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace hubnode;
namespace json = boost::json;
using kind = inbound::kind;

namespace {

json::value parse_frame(const std::string& frame) {
  return json::parse(json::string_view{frame.data(), frame.size()});
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

void check_error(const inbound& in, std::string_view code) {
  CHECK(in.type == kind::invalid);
  CHECK(in.error_code == code);
  CHECK_FALSE(in.error_message.empty());
}

std::string nested(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string id_list(std::size_t n) {
  std::string list = "[";
  for (std::size_t i = 0; i < n; ++i)
    list += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
  return list + "]";
}

} // namespace

// ---- parse_request ---------------------------------------------------------

TEST_CASE("parse: text that is not JSON is a bad_request") {
  for (std::string text :
       {"", " ", "{", "not json", "{\"type\":\"ping\"} x", "{\"type\":'ping'}",
        "{\"type\":\"ping\",}", "\xff\xfe", "{\"type\":\"ping\",\"ref\":\"\xc3\x28\"}"}) {
    CAPTURE(text);
    auto in = protocol::parse_request(text);
    check_error(in, "bad_request");
    CHECK(in.error_message == "invalid JSON");
    CHECK_FALSE(in.has_ref);
  }
}

TEST_CASE("parse: JSON that is not an object is a bad_request") {
  for (auto text : {"[]", "42", "\"ping\"", "null", "true", "[{\"type\":\"ping\"}]"}) {
    CAPTURE(text);
    auto in = protocol::parse_request(text);
    check_error(in, "bad_request");
    CHECK(in.error_message == "message must be a JSON object");
  }
}

TEST_CASE("parse: deep nesting is a bad_request, not a crash") {
  check_error(protocol::parse_request(std::string(100000, '[')), "bad_request");
  check_error(protocol::parse_request(nested(100000)), "bad_request");
  check_error(protocol::parse_request(std::string(100000, '{')), "bad_request");
  auto deep = R"({"ref":"r","type":"send","to":"1","data":)" + nested(100000) + "}";
  check_error(protocol::parse_request(deep), "bad_request");
}

TEST_CASE("parse: nesting is allowed up to 64 levels, the frame's object included") {
  auto frame = [](std::size_t data_depth) {
    return R"({"type":"send","to":"1","data":)" + nested(data_depth) + "}";
  };
  auto ok = protocol::parse_request(frame(63));
  CHECK(ok.type == kind::send);
  CHECK(ok.data == nested(63));
  check_error(protocol::parse_request(frame(64)), "bad_request");
}

TEST_CASE("parse: ref") {
  SUBCASE("absent") {
    auto in = protocol::parse_request(R"({"type":"ping"})");
    CHECK(in.type == kind::ping);
    CHECK_FALSE(in.has_ref);
    CHECK(in.ref.empty());
  }
  SUBCASE("empty string is a ref") {
    auto in = protocol::parse_request(R"({"type":"ping","ref":""})");
    CHECK(in.type == kind::ping);
    CHECK(in.has_ref);
    CHECK(in.ref.empty());
  }
  SUBCASE("64 characters") {
    std::string ref(64, 'r');
    auto in = protocol::parse_request(R"({"type":"ping","ref":")" + ref + "\"}");
    CHECK(in.type == kind::ping);
    CHECK(in.ref == ref);
  }
  SUBCASE("64 characters counted as code points, not bytes") {
    std::string ref;
    for (int i = 0; i < 64; ++i)
      ref += "\xc3\xa9"; // é
    auto in = protocol::parse_request(R"({"type":"ping","ref":")" + ref + "\"}");
    CHECK(in.type == kind::ping);
    CHECK(in.ref == ref);
  }
  SUBCASE("escapes are decoded") {
    auto in = protocol::parse_request(R"({"type":"ping","ref":"a\"b\\c\n\u00e9"})");
    CHECK(in.ref == "a\"b\\c\n\xc3\xa9");
  }
  SUBCASE("65 characters is a bad_request") {
    auto in = protocol::parse_request(R"({"type":"ping","ref":")" + std::string(65, 'r') +
                                      "\"}");
    check_error(in, "bad_request");
    CHECK_FALSE(in.has_ref);
  }
  SUBCASE("not a string is a bad_request") {
    for (auto ref : {"1", "null", "true", "[]", "{}"}) {
      CAPTURE(ref);
      auto in =
          protocol::parse_request(std::string{R"({"type":"ping","ref":)"} + ref + "}");
      check_error(in, "bad_request");
      CHECK_FALSE(in.has_ref);
    }
  }
  SUBCASE("a bad ref wins over a bad type") {
    check_error(protocol::parse_request(R"({"type":"nope","ref":5})"), "bad_request");
  }
}

TEST_CASE("parse: type") {
  SUBCASE("missing or not a string is a bad_request carrying the ref") {
    for (auto text : {R"({"ref":"r1"})", R"({"ref":"r1","type":1})",
                      R"({"ref":"r1","type":null})", R"({"ref":"r1","type":["ping"]})"}) {
      CAPTURE(text);
      auto in = protocol::parse_request(text);
      check_error(in, "bad_request");
      CHECK(in.has_ref);
      CHECK(in.ref == "r1");
    }
  }
  SUBCASE("unknown is unknown_type, names it and carries the ref") {
    auto in = protocol::parse_request(R"({"type":"join","ref":"r2"})");
    check_error(in, "unknown_type");
    CHECK(in.error_message.find("join") != std::string::npos);
    CHECK(in.has_ref);
    CHECK(in.ref == "r2");
  }
  SUBCASE("matching is exact") {
    for (auto type : {"Ping", "ping ", "", "message", "ack", "welcome"}) {
      CAPTURE(type);
      check_error(protocol::parse_request(std::string{R"({"type":")"} + type + "\"}"),
                  "unknown_type");
    }
  }
  SUBCASE("a long unknown type is not echoed in full") {
    std::string type(10000, 't');
    auto in = protocol::parse_request(R"({"type":")" + type + "\"}");
    check_error(in, "unknown_type");
    CHECK(in.error_message.size() < 100);
    CHECK(in.error_message.find(std::string(64, 't')) != std::string::npos);
  }
  SUBCASE("truncation keeps whole UTF-8 characters") {
    std::string type;
    for (int i = 0; i < 100; ++i)
      type += "\xe2\x82\xac"; // €
    auto in = protocol::parse_request(R"({"type":")" + type + "\"}");
    check_error(in, "unknown_type");
    // The error frame must itself be valid UTF-8, which the JSON parser checks.
    auto frame = protocol::error(in.error_code, in.error_message, in.ref, in.has_ref);
    CHECK_NOTHROW(parse_frame(frame));
  }
}

TEST_CASE("parse: send") {
  SUBCASE("valid") {
    auto in = protocol::parse_request(
        R"({"type":"send","to":"007","data":{"text":"hi","n":[1,2]},"ref":"a1"})");
    CHECK(in.type == kind::send);
    CHECK(in.to == 7);
    CHECK(in.has_ref);
    CHECK(in.ref == "a1");
    CHECK(parse_frame(in.data) == json::parse(R"({"text":"hi","n":[1,2]})"));
    CHECK(in.error_code.empty());
  }
  SUBCASE("any JSON is data, null included") {
    for (auto data : {"null", "0", "-1.5", "\"s\"", "[]", "{}", "true"}) {
      CAPTURE(data);
      auto in = protocol::parse_request(
          std::string{R"({"type":"send","to":"1","data":)"} + data + "}");
      CHECK(in.type == kind::send);
      CHECK(parse_frame(in.data) == json::parse(data));
    }
  }
  SUBCASE("largest user id") {
    auto in = protocol::parse_request(
        R"({"type":"send","to":"18446744073709551615","data":1})");
    CHECK(in.type == kind::send);
    CHECK(in.to == 18446744073709551615u);
  }
  SUBCASE("bad recipient is invalid_recipient carrying the ref") {
    for (auto to : {"", R"(,"to":42)", R"(,"to":null)", R"(,"to":"")", R"(,"to":"abc")",
                    R"(,"to":"-1")", R"(,"to":" 1")", R"(,"to":"18446744073709551616")",
                    R"(,"to":["1"])"}) {
      CAPTURE(to);
      auto in = protocol::parse_request(std::string{R"({"type":"send","ref":"x")"} + to +
                                        R"(,"data":1})");
      check_error(in, "invalid_recipient");
      CHECK(in.has_ref);
      CHECK(in.ref == "x");
    }
  }
  SUBCASE("missing data is a bad_request") {
    auto in = protocol::parse_request(R"({"type":"send","to":"1","ref":"x"})");
    check_error(in, "bad_request");
    CHECK(in.ref == "x");
  }
}

// SPEC section 3, "Fidelity": data is the text the sender wrote.
namespace {

std::string send_with(std::string_view data) {
  return std::string{R"({"type":"send","to":"1","data":)"} + std::string{data} + "}";
}

std::string carried(const std::string& frame) {
  auto in = protocol::parse_request(frame);
  REQUIRE(in.type == kind::send);
  return in.data;
}

} // namespace

TEST_CASE("parse: send carries data as the sender wrote it") {
  // Each of these came out changed when data was parsed and written again.
  for (auto data : {"1.5", "2.50", "1E+2", "-0", "-0.0", "1e400", "-1E-400",
                    "123456789012345678901234567890", "18446744073709551616",
                    R"("\u00e9\n\"\\\/\ud83d\ude00 \u0000")",
                    R"({"z":1,"a":{"y":[1.10,{"b":null,"a":true}],"x":false},"m":"é"})",
                    R"(["]}","\\",{"k\"}":"\"\\"},[[]],"\\\""])"}) {
    CAPTURE(data);
    CHECK(carried(send_with(data)) == data);
  }
}

TEST_CASE("parse: send's data wherever it stands, the last of repeats") {
  SUBCASE("first, last or between other members") {
    CHECK(carried(R"({"data":1.0,"type":"send","to":"1"})") == "1.0");
    CHECK(carried(R"({"type":"send","to":"1","data":[1.0],"ref":"r"})") == "[1.0]");
  }
  SUBCASE("a repeated data: the last, as the parsed object keeps it") {
    CHECK(carried(R"({"type":"send","to":"1","data":1,"data":{"k":2.50}})") ==
          R"({"k":2.50})");
    CHECK(carried(R"({"type":"send","data":"a","to":"1","data":"b","ref":"r"})") ==
          R"("b")");
  }
  SUBCASE("a data inside another member is not the member") {
    CHECK(carried(R"({"type":"send","to":"1","x":{"data":5},"data":7,"y":["data",1]})") ==
          "7");
    auto in = protocol::parse_request(R"({"type":"send","to":"1","x":{"data":5}})");
    check_error(in, "bad_request");
  }
  SUBCASE("escaped member names compare unescaped") {
    CHECK(carried(R"({"type":"send","to":"1","d\u0061ta":1.50})") == "1.50");
    CHECK(carried(
              R"({"type":"send","to":"1","data":1,"\u0064\u0041ta":2,"\u0064ata":3})") ==
          "3");
    for (auto name : {R"(dat\u00e1)", R"(data\u0000)", R"(dat)", R"(\"data)",
                      R"(d\u0061t\ud83d\ude00)"}) {
      CAPTURE(name);
      auto in = protocol::parse_request(std::string{R"({"type":"send","to":"1",")"} +
                                        name + R"(":1})");
      check_error(in, "bad_request");
      CHECK(in.error_message == "data is required");
    }
  }
  SUBCASE("whitespace around the value is dropped, inside it kept") {
    CHECK(carried("{ \"type\" : \"send\" ,\n\"to\":\"1\" , \"data\" :\t [ 1 , \"a b\" ]  "
                  "\n}") == "[ 1 , \"a b\" ]");
    CHECK(carried(" \r\n{\"type\":\"send\",\"to\":\"1\",\"data\":-2.0 }\n") == "-2.0");
  }
}

TEST_CASE("encode: a message carries data as the sender wrote it, as valid JSON") {
  for (auto data : {"1.5", "1e400", "123456789012345678901234567890", "-0",
                    R"({"b":[1, 2.50],"a" : "\u00e9"})"}) {
    CAPTURE(data);
    auto frame = protocol::message("id", "1", carried(send_with(data)), 5);
    CHECK(frame.find(std::string{R"("data":)"} + data + R"(,"ts":5})") !=
          std::string::npos);
    CHECK(frame.find("Infinity") == std::string::npos);
    CHECK(parse_frame(frame).at("data") == json::parse(data));
  }
}

TEST_CASE("api_message_data: the body's data as written, or nothing") {
  CHECK(protocol::api_message_data(R"({"data":1.5})") == "1.5");
  CHECK(protocol::api_message_data("\n{ \"x\":{\"data\":1}, \"data\" : [1e400] }\n") ==
        "[1e400]");
  CHECK(protocol::api_message_data(R"({"d\u0061ta":1,"data":"last"})") == R"("last")");
  for (const auto& body : std::vector<std::string>{
           "", "{", "[]", R"("data")", R"({"x":{"data":1}})", R"({"data":1,})",
           R"({"data":1} x)", "{\"data\":\"\xff\"}", R"({"data":)" + nested(64) + "}"}) {
    CAPTURE(body);
    CHECK_FALSE(protocol::api_message_data(body));
  }
  CHECK(protocol::api_message_data(R"({"data":)" + nested(63) + "}") == nested(63));
}

TEST_CASE("parse: presence, watch and unwatch take userIds") {
  for (auto [type, expected] : {std::pair{"presence", kind::presence},
                                {"watch", kind::watch},
                                {"unwatch", kind::unwatch}}) {
    CAPTURE(type);
    auto request = [type = std::string{type}](const std::string& ids) {
      return protocol::parse_request(R"({"ref":"q","type":")" + type + R"(","userIds":)" +
                                     ids + "}");
    };
    auto ok = request(R"(["42","007","0"])");
    CHECK(ok.type == expected);
    CHECK(ok.user_ids == user_list{42, 7, 0});

    auto empty = request("[]");
    CHECK(empty.type == expected);
    CHECK(empty.user_ids.empty());

    CHECK(request(id_list(100)).user_ids.size() == 100);

    for (std::string bad :
         {id_list(101), std::string{"null"}, std::string{"\"42\""},
          std::string{"{\"42\":true}"}, std::string{"[42]"}, std::string{"[\"1\",\"x\"]"},
          std::string{"[\"-1\"]"}, std::string{"[\"18446744073709551616\"]"},
          std::string{"[[\"1\"]]"}}) {
      CAPTURE(bad);
      auto in = request(bad);
      check_error(in, "bad_request");
      CHECK(in.ref == "q");
      CHECK(in.user_ids.empty());
    }

    auto missing =
        protocol::parse_request(R"({"ref":"q","type":")" + std::string{type} + "\"}");
    check_error(missing, "bad_request");
  }
}

TEST_CASE("parse: the error names the bad entry of userIds") {
  auto in = protocol::parse_request(R"({"type":"watch","userIds":["1","2","x"]})");
  check_error(in, "bad_request");
  CHECK(in.error_message.find("userIds[2]") != std::string::npos);
  auto many =
      protocol::parse_request(R"({"type":"watch","userIds":)" + id_list(101) + "}");
  CHECK(many.error_message.find("100") != std::string::npos);
}

TEST_CASE("parse: repeated ids, canonical or not, are one user") {
  auto in =
      protocol::parse_request(R"({"type":"presence","userIds":["7","007","8","7"]})");
  CHECK(in.user_ids == user_list{7, 8});
}

TEST_CASE("parse: ping ignores unknown fields") {
  auto in = protocol::parse_request(R"({"type":"ping","ref":"p","extra":[1,{"a":2}]})");
  CHECK(in.type == kind::ping);
  CHECK(in.ref == "p");
}

// ---- encoders --------------------------------------------------------------

TEST_CASE("encode: welcome") {
  auto frame = protocol::welcome(42, "c-1", "node-a");
  CHECK(starts_with(frame, R"({"type":"welcome")"));
  CHECK(parse_frame(frame) ==
        json::parse(
            R"({"type":"welcome","userId":"42","connectionId":"c-1","node":"node-a"})"));
  CHECK(parse_frame(protocol::welcome(18446744073709551615u, "c", "n")).at("userId") ==
        "18446744073709551615");
}

TEST_CASE("encode: welcome with the stream position, and recovered when asked") {
  auto frame = protocol::welcome(42, "c-1", "node-a", stream_position{"e\"1", 7}, true);
  CHECK(parse_frame(frame) ==
        json::parse(R"({"type":"welcome","userId":"42","connectionId":"c-1",)"
                    R"("node":"node-a","epoch":"e\"1","offset":7,"recovered":true})"));
  CHECK(parse_frame(protocol::welcome(1, "c", "n", std::nullopt, false)) ==
        json::parse(R"({"type":"welcome","userId":"1","connectionId":"c","node":"n",)"
                    R"("recovered":false})"));
}

TEST_CASE("encode: message with its offset") {
  auto v = parse_frame(protocol::message("m-1", "42", "1", 5, 18446744073709551615u));
  CHECK(v.at("offset").as_uint64() == 18446744073709551615u);
  CHECK_FALSE(
      parse_frame(protocol::message("m-1", "42", "1", 5)).as_object().contains("offset"));
}

TEST_CASE("encode: message keeps data verbatim") {
  std::string data = R"({"b":[1, 2.50,"x\u0041"],"a" : null})";
  auto frame = protocol::message("m-1", "42", data, 1700000000000);
  CHECK(starts_with(frame, R"({"type":"message")"));
  CHECK(frame.find(data) != std::string::npos);
  auto v = parse_frame(frame);
  CHECK(v.at("id") == "m-1");
  CHECK(v.at("from") == "42");
  CHECK(v.at("ts").as_int64() == 1700000000000);
  CHECK(v.at("data") == json::parse(data));
  CHECK(parse_frame(protocol::message("m", "server", "null", 1)).at("from") == "server");
}

TEST_CASE("encode: a parsed send round-trips into a message") {
  auto in = protocol::parse_request(
      R"({"type":"send","to":"9","data":{"q":"\"\\\n\u0001\u00e9\ud83d\ude00","n":-0.5}})");
  REQUIRE(in.type == kind::send);
  auto v = parse_frame(protocol::message("id", "1", in.data, 5));
  CHECK(v.at("data").at("q") == "\"\\\n\x01\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(v.at("data").at("n").as_double() == -0.5);
}

TEST_CASE("encode: ack") {
  auto with_ref = protocol::ack("r", true, "m-1", true);
  CHECK(starts_with(with_ref, R"({"type":"ack")"));
  CHECK(parse_frame(with_ref) ==
        json::parse(R"({"type":"ack","ref":"r","id":"m-1","online":true})"));
  auto without = protocol::ack("ignored", false, "m-2", false);
  CHECK(starts_with(without, R"({"type":"ack")"));
  CHECK(parse_frame(without) ==
        json::parse(R"({"type":"ack","id":"m-2","online":false})"));
}

TEST_CASE("encode: pong") {
  CHECK(protocol::pong("", false) == R"({"type":"pong"})");
  CHECK(parse_frame(protocol::pong("p1", true)) ==
        json::parse(R"({"type":"pong","ref":"p1"})"));
  CHECK(parse_frame(protocol::pong("", true)) ==
        json::parse(R"({"type":"pong","ref":""})"));
}

TEST_CASE("encode: error") {
  auto frame = protocol::error("unknown_type", "unknown type \"x\"", "r", true);
  CHECK(starts_with(frame, R"({"type":"error")"));
  CHECK(
      parse_frame(frame) ==
      json::parse(
          R"({"type":"error","code":"unknown_type","message":"unknown type \"x\"","ref":"r"})"));
  CHECK(parse_frame(protocol::error("bad_request", "invalid JSON", "", false)) ==
        json::parse(R"({"type":"error","code":"bad_request","message":"invalid JSON"})"));
}

TEST_CASE("encode: every parse error becomes a valid error frame") {
  for (std::string text :
       {std::string{}, std::string{"[]"}, std::string{R"({"type":"x\"y","ref":"\"\\"})"},
        std::string{R"({"type":"send","ref":"\u0000"})"}, std::string(1000, '[')}) {
    CAPTURE(text);
    auto in = protocol::parse_request(text);
    auto v =
        parse_frame(protocol::error(in.error_code, in.error_message, in.ref, in.has_ref));
    CHECK(v.at("code") == json::string_view{in.error_code});
    CHECK(v.as_object().contains("ref") == in.has_ref);
    if (in.has_ref)
      CHECK(v.at("ref") == json::string_view{in.ref});
  }
}

TEST_CASE("encode: strings are escaped") {
  std::string nasty = "q\"b\\s/é€😀";
  for (int c = 0; c < 0x20; ++c)
    nasty += static_cast<char>(c);
  nasty += '\x7f';
  auto v = parse_frame(protocol::error(nasty, nasty, nasty, true));
  CHECK(v.at("code") == json::string_view{nasty});
  CHECK(v.at("message") == json::string_view{nasty});
  CHECK(v.at("ref") == json::string_view{nasty});
  auto m = parse_frame(protocol::message(nasty, nasty, "1", 0));
  CHECK(m.at("id") == json::string_view{nasty});
  auto w = parse_frame(protocol::welcome(1, nasty, nasty));
  CHECK(w.at("node") == json::string_view{nasty});
  auto h = parse_frame(protocol::http_error(nasty, nasty, nasty));
  CHECK(h.at("field") == json::string_view{nasty});
}

TEST_CASE("encode: presence lists every queried id") {
  auto frame = protocol::presence({42, 7, 0}, {42});
  CHECK(starts_with(frame, R"({"type":"presence")"));
  CHECK(parse_frame(frame) ==
        json::parse(R"({"type":"presence","users":{"42":true,"7":false,"0":false}})"));
  CHECK(parse_frame(protocol::presence({}, {})) ==
        json::parse(R"({"type":"presence","users":{}})"));
  CHECK(protocol::presence({5, 5}, {5}) == R"({"type":"presence","users":{"5":true}})");
}

TEST_CASE("encode: presence_changed") {
  auto frame = protocol::presence_changed(42, false);
  CHECK(starts_with(frame, R"({"type":"presence_changed")"));
  CHECK(parse_frame(frame) ==
        json::parse(R"({"type":"presence_changed","userId":"42","online":false})"));
  CHECK(parse_frame(protocol::presence_changed(1, true)).at("online") == true);
}

TEST_CASE("encode: http_error") {
  CHECK(parse_frame(protocol::http_error("validation", "userId parameter is required",
                                         "userId")) ==
        json::parse(R"({"error":"validation","field":"userId",
                           "message":"userId parameter is required"})"));
  auto plain = parse_frame(protocol::http_error("not_found", "no such path"));
  CHECK(plain == json::parse(R"({"error":"not_found","message":"no such path"})"));
}

TEST_CASE("now_ms is unix time in milliseconds") {
  using namespace std::chrono;
  auto before =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto now = now_ms();
  auto after =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  CHECK(before <= now);
  CHECK(now <= after);
  CHECK(now > 1600000000000);
}
