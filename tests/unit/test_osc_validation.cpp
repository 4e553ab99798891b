// A table of good and bad OSC messages with the outcome each must have. Messages are
// serialised and parsed by liblo, as they are on the wire.
#include <doctest/doctest.h>
#include <lo/lo.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "osc/message_validator.h"
#include "osc/osc_arguments.h"
#include "osc/osc_packet.h"
#include "shm/layout.h"

using namespace sustain;

namespace {
struct Case {
    const char* name;
    const char* path;
    const char* types;  // built with lo_message_add_*
    double number;
    const char* text;
    RejectReason expected;
    uint32_t param;
    double value;
};

lo_message build(const Case& c) {
    lo_message m = lo_message_new();
    for (const char* t = c.types; *t; ++t) {
        switch (*t) {
            case 'f': lo_message_add_float(m, static_cast<float>(c.number)); break;
            case 'd': lo_message_add_double(m, c.number); break;
            case 'i': lo_message_add_int32(m, static_cast<int32_t>(c.number)); break;
            case 'h': lo_message_add_int64(m, static_cast<int64_t>(c.number)); break;
            case 's': lo_message_add_string(m, c.text); break;
            case 'T': lo_message_add_true(m); break;
            case 'N': lo_message_add_nil(m); break;
            case 'b': {
                lo_blob blob = lo_blob_new(4, "abcd");
                lo_message_add_blob(m, blob);
                lo_blob_free(blob);
                break;
            }
        }
    }
    return m;
}

ValidatedChange roundTrip(const Case& c) {
    lo_message built = build(c);
    size_t size = 0;
    void* bytes = lo_message_serialise(built, c.path, nullptr, &size);
    lo_message_free(built);
    int result = 0;
    lo_message parsed = lo_message_deserialise(bytes, size, &result);
    REQUIRE(parsed != nullptr);
    ValidatedChange change = validateMessage(lo_get_path(bytes, static_cast<ssize_t>(size)), parsed, 4, 48000);
    lo_message_free(parsed);
    free(bytes);
    return change;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

TEST_CASE("OSC validation: table of good and bad messages") {
    const std::vector<Case> cases = {
        {"gain as float", "/engine/gain", "f", 0.5, "", RejectReason::None, kParamMasterGain, 0.5},
        {"gain as int", "/engine/gain", "i", 1, "", RejectReason::None, kParamMasterGain, 1.0},
        {"gain as double", "/engine/gain", "d", 0.25, "", RejectReason::None, kParamMasterGain, 0.25},
        {"gain zero", "/engine/gain", "f", 0.0, "", RejectReason::None, kParamMasterGain, 0.0},
        {"a denormal gain passes validation (submitChange makes it 0)", "/engine/gain", "d", 1e-300, "", RejectReason::None, kParamMasterGain, 1e-300},
        {"freq of voice 0", "/engine/freq", "f", 440, "", RejectReason::None, voiceFreqParam(0), 440.0},
        {"voice 3 freq", "/engine/voice/3/freq", "i", 1000, "", RejectReason::None, voiceFreqParam(3), 1000.0},
        {"voice 2 gain", "/engine/voice/2/gain", "d", 0.75, "", RejectReason::None, voiceGainParam(2), 0.75},
        {"gain too loud", "/engine/gain", "f", 1.5, "", RejectReason::OutOfRange, 0, 0},
        {"negative gain", "/engine/gain", "f", -0.1, "", RejectReason::OutOfRange, 0, 0},
        {"freq too low", "/engine/freq", "f", 0.5, "", RejectReason::OutOfRange, 0, 0},
        {"freq above 0.45 rate", "/engine/freq", "f", 21700, "", RejectReason::OutOfRange, 0, 0},
        {"voice out of range", "/engine/voice/4/gain", "f", 0.5, "", RejectReason::OutOfRange, 0, 0},
        {"huge voice index", "/engine/voice/999999/gain", "f", 0.5, "", RejectReason::OutOfRange, 0, 0},
        {"absurd voice index", "/engine/voice/99999999999999999999/gain", "f", 0.5, "", RejectReason::UnknownAddress, 0, 0},
        {"NaN", "/engine/gain", "f", kNaN, "", RejectReason::NotFinite, 0, 0},
        {"inf", "/engine/freq", "d", kInf, "", RejectReason::NotFinite, 0, 0},
        {"-inf", "/engine/gain", "d", -kInf, "", RejectReason::NotFinite, 0, 0},
        {"string", "/engine/gain", "s", 0, "loud", RejectReason::BadType, 0, 0},
        {"int64 is not accepted", "/engine/gain", "h", 1, "", RejectReason::BadType, 0, 0},
        {"true", "/engine/gain", "T", 0, "", RejectReason::BadType, 0, 0},
        {"blob", "/engine/freq", "b", 0, "", RejectReason::BadType, 0, 0},
        {"no argument", "/engine/gain", "", 0, "", RejectReason::ArgCount, 0, 0},
        {"two arguments", "/engine/gain", "ff", 0.5, "", RejectReason::ArgCount, 0, 0},
        {"unknown address", "/engine/volume", "f", 0.5, "", RejectReason::UnknownAddress, 0, 0},
        {"unknown leaf", "/engine/voice/1/pan", "f", 0.5, "", RejectReason::UnknownAddress, 0, 0},
        {"negative voice", "/engine/voice/-1/gain", "f", 0.5, "", RejectReason::UnknownAddress, 0, 0},
        {"empty voice", "/engine/voice//gain", "f", 0.5, "", RejectReason::UnknownAddress, 0, 0},
        {"prefix only", "/engine", "f", 0.5, "", RejectReason::UnknownAddress, 0, 0},
    };
    for (const Case& c : cases) {
        const std::string name = c.name;
        CAPTURE(name);
        const ValidatedChange change = roundTrip(c);
        CHECK(change.error == c.expected);
        if (c.expected == RejectReason::None) {
            CHECK(change.param == c.param);
            CHECK(change.value == doctest::Approx(c.value));
        } else {
            CHECK_FALSE(change.why.empty());
        }
    }
}

TEST_CASE("OSC validation: the message for a wrong type names what came and what was expected") {
    const ValidatedChange change = roundTrip({"", "/engine/gain", "s", 0, "loud", RejectReason::BadType, 0, 0});
    CHECK(change.why == "expected f, i or d, got s \"loud\"");
}

TEST_CASE("OSC validation: malformed bytes are refused by liblo's parser") {
    const char garbage[] = "/engine/gain\0\0\0\0,f\0\0";  // type tag promises a float that is missing
    int result = 0;
    lo_message m = lo_message_deserialise(const_cast<char*>(garbage), 20, &result);
    CHECK(m == nullptr);
    CHECK(result != 0);
}

namespace {
std::vector<uint8_t> serialise(const char* path, float value) {
    lo_message m = lo_message_new();
    lo_message_add_float(m, value);
    size_t size = 0;
    void* bytes = lo_message_serialise(m, path, nullptr, &size);
    std::vector<uint8_t> out(static_cast<uint8_t*>(bytes), static_cast<uint8_t*>(bytes) + size);
    free(bytes);
    lo_message_free(m);
    return out;
}

void appendBigEndian32(std::vector<uint8_t>& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

std::vector<uint8_t> bundle(uint64_t timetag, const std::vector<std::vector<uint8_t>>& elements) {
    std::vector<uint8_t> out = {'#', 'b', 'u', 'n', 'd', 'l', 'e', 0};
    appendBigEndian32(out, static_cast<uint32_t>(timetag >> 32));
    appendBigEndian32(out, static_cast<uint32_t>(timetag));
    for (const auto& e : elements) {
        appendBigEndian32(out, static_cast<uint32_t>(e.size()));
        out.insert(out.end(), e.begin(), e.end());
    }
    return out;
}
}  // namespace

TEST_CASE("OSC packets: bundles are walked in order with their timetag, within limits") {
    const auto a = serialise("/engine/gain", 0.1f);
    const auto b = serialise("/engine/freq", 220.0f);
    const auto packet = bundle(0x0000000200000000ull, {a, bundle(7, {b}), a});
    std::vector<uint64_t> timetags;
    std::vector<size_t> sizes;
    const PacketError error = forEachMessage(packet.data(), packet.size(), [&](const uint8_t*, size_t size, uint64_t tag) {
        timetags.push_back(tag);
        sizes.push_back(size);
    });
    CHECK(error == PacketError::None);
    REQUIRE(timetags.size() == 3);
    CHECK(timetags[0] == 0x0000000200000000ull);
    CHECK(timetags[1] == 7);
    CHECK(sizes[1] == b.size());

    int delivered = 0;
    auto count = [&](const uint8_t*, size_t, uint64_t) { ++delivered; };
    std::vector<uint8_t> deep = a;
    for (int i = 0; i < 10; ++i) deep = bundle(1, {deep});
    CHECK(forEachMessage(deep.data(), deep.size(), count) == PacketError::TooDeep);
    CHECK(delivered == 0);

    std::vector<std::vector<uint8_t>> many(5000, a);
    const auto huge = bundle(1, many);
    delivered = 0;
    CHECK(forEachMessage(huge.data(), huge.size(), count) == PacketError::TooManyElements);
    CHECK(delivered == 4096);

    auto truncated = packet;
    truncated.resize(truncated.size() - 3);
    CHECK(forEachMessage(truncated.data(), truncated.size(), count) == PacketError::BadBundle);

    const uint8_t notOsc[] = {'h', 'e', 'l', 'l', 'o', 0, 0, 0};
    CHECK(forEachMessage(notOsc, sizeof notOsc, count) == PacketError::NotOsc);
    CHECK(forEachMessage(notOsc, 0, count) == PacketError::NotOsc);
}

#include <arpa/inet.h>
#include <netinet/in.h>

#include "osc/allow_list.h"

namespace {
sockaddr_storage ipv4(const char* text) {
    sockaddr_storage address{};
    auto& in = reinterpret_cast<sockaddr_in&>(address);
    in.sin_family = AF_INET;
    inet_pton(AF_INET, text, &in.sin_addr);
    return address;
}
sockaddr_storage ipv6(const char* text) {
    sockaddr_storage address{};
    auto& in6 = reinterpret_cast<sockaddr_in6&>(address);
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, text, &in6.sin6_addr);
    return address;
}
}  // namespace

TEST_CASE("allow list: addresses and CIDR ranges, IPv4 and IPv6, nothing else") {
    AllowList open;
    CHECK(open.allows(ipv4("203.0.113.9")));  // empty: --bind decides
    AllowList list;
    std::string error;
    REQUIRE(list.add("192.168.1.0/24", error));
    REQUIRE(list.add("10.0.0.7", error));
    REQUIRE(list.add("fd00::/8", error));
    CHECK(list.allows(ipv4("192.168.1.200")));
    CHECK_FALSE(list.allows(ipv4("192.168.2.1")));
    CHECK(list.allows(ipv4("10.0.0.7")));
    CHECK_FALSE(list.allows(ipv4("10.0.0.8")));
    CHECK(list.allows(ipv6("fd12::1")));
    CHECK_FALSE(list.allows(ipv6("fe80::1")));
    CHECK(list.allows(ipv6("::ffff:192.168.1.5")));  // IPv4 on a dual-stack socket
    CHECK_FALSE(list.add("192.168.1.0/33", error));
    CHECK(error.find("prefix length") != std::string::npos);
    CHECK_FALSE(list.add("example.org", error));
    CHECK_FALSE(list.add("10.0.0.1/", error));
    AllowList narrow;
    REQUIRE(narrow.add("10.1.2.3/20", error));
    CHECK(narrow.allows(ipv4("10.1.15.255")));
    CHECK_FALSE(narrow.allows(ipv4("10.1.16.0")));
}

TEST_CASE("the one decoder of OSC arguments: numbers and switches, at any alignment") {
    lo_message m = lo_message_new();
    lo_message_add_int32(m, -7);
    lo_message_add_double(m, 0.25);  // at a 4-byte offset from the int: not 8-byte aligned
    lo_message_add_float(m, 1.5f);
    lo_message_add_true(m);
    lo_message_add_false(m);
    lo_message_add_string(m, "loud");
    lo_message_add_int64(m, 3);
    size_t size = 0;
    void* bytes = lo_message_serialise(m, "/x", nullptr, &size);
    lo_message_free(m);
    // Parsed from a buffer that starts 4 bytes past an 8-byte boundary, as a datagram in a
    // receive batch may.
    std::vector<uint64_t> storage(size / 8 + 2);
    auto* shifted = reinterpret_cast<char*>(storage.data()) + 4;
    std::memcpy(shifted, bytes, size);
    std::free(bytes);
    int error = 0;
    lo_message parsed = lo_message_deserialise(shifted, size, &error);
    REQUIRE(parsed != nullptr);
    const char* types = lo_message_get_types(parsed);
    lo_arg** argv = lo_message_get_argv(parsed);
    CHECK(numberArgument(types[0], argv[0]) == -7.0);
    CHECK(numberArgument(types[1], argv[1]) == 0.25);
    CHECK(numberArgument(types[2], argv[2]) == 1.5);
    CHECK_FALSE(numberArgument(types[3], argv[3]).has_value());  // T is a switch, not a number
    CHECK(controlArgument(types[3], argv[3]) == 1.0);
    CHECK(controlArgument(types[4], argv[4]) == 0.0);
    CHECK(controlArgument(types[2], argv[2]) == 1.5);
    CHECK_FALSE(controlArgument(types[5], argv[5]).has_value());
    CHECK_FALSE(numberArgument(types[6], argv[6]).has_value());  // int64: refused, see osc_arguments.h
    CHECK(describeArgument(types[1], argv[1]) == "d 0.25");
    CHECK(describeArgument(types[5], argv[5]) == "s \"loud\"");
    lo_message_free(parsed);
}
