// OSC over a byte stream: both framings, split and joined at every boundary.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "osc/stream_framing.h"

using namespace sustain;

namespace {
using Bytes = std::vector<uint8_t>;

// A packet of `size` bytes whose content includes SLIP's special bytes at varying places.
Bytes makePacket(size_t size, uint8_t seed) {
    Bytes packet(size);
    for (size_t i = 0; i < size; ++i) {
        const auto value = static_cast<uint8_t>(i * 37 + seed);
        packet[i] = (i % 7 == 3) ? slip::kEnd : (i % 11 == 5) ? slip::kEsc : value;
    }
    return packet;
}

Bytes frame(Framing framing, const std::vector<Bytes>& packets) {
    Bytes stream;
    for (const Bytes& packet : packets) REQUIRE(appendFramed(framing, packet.data(), packet.size(), stream));
    return stream;
}

struct Collected {
    std::vector<Bytes> packets;
    FramingError error = FramingError::None;
};

// Feeds `stream` in chunks that end at each of `cuts` (offsets, ascending), then the rest.
Collected decode(StreamDecoder& decoder, const Bytes& stream, const std::vector<size_t>& cuts = {}) {
    Collected out;
    auto onPacket = [&](const uint8_t* data, size_t size) { out.packets.emplace_back(data, data + size); };
    size_t begin = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(stream.size());
    for (size_t end : ends) {
        const FramingError error = decoder.feed(stream.data() + begin, end - begin, onPacket);
        if (error != FramingError::None) out.error = error;
        begin = end;
    }
    return out;
}

// A small valid OSC message: "/test" ,i with an argument holding 0xC0 and 0xDB.
Bytes oscMessage(uint8_t tag) {
    Bytes message = {'/', 't', 'e', 's', 't', 0, 0, 0, ',', 'i', 0, 0, 0xC0, 0xDB, 0x00, tag};
    return message;
}
}  // namespace

TEST_CASE("framing: both framings round-trip packets of every size up to 600 and large ones") {
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        CAPTURE(std::string(describe(framing)));
        std::vector<size_t> sizes;
        for (size_t size = 1; size <= 600; ++size) sizes.push_back(size);
        for (size_t size : {4095, 4096, 4097, 65535, 65536}) sizes.push_back(size);
        for (size_t size : sizes) {
            CAPTURE(size);
            const Bytes packet = makePacket(size, static_cast<uint8_t>(size));
            StreamDecoder decoder(framing);
            const Collected got = decode(decoder, frame(framing, {packet}));
            REQUIRE(got.error == FramingError::None);
            REQUIRE(got.packets.size() == 1);
            CHECK(got.packets[0] == packet);
            CHECK(decoder.pendingBytes() == 0);
        }
    }
}

TEST_CASE("framing: SLIP escapes END and ESC, and writes END before and after") {
    const Bytes packet = {'/', slip::kEnd, slip::kEsc, 'x'};
    Bytes out;
    REQUIRE(appendFramed(Framing::Slip, packet.data(), packet.size(), out));
    CHECK(out == Bytes{slip::kEnd, '/', slip::kEsc, slip::kEscEnd, slip::kEsc, slip::kEscEsc, 'x', slip::kEnd});
    out.clear();
    REQUIRE(appendFramed(Framing::LengthPrefix, packet.data(), packet.size(), out));
    CHECK(out == Bytes{0, 0, 0, 4, '/', slip::kEnd, slip::kEsc, 'x'});
    out.clear();
    CHECK_FALSE(appendFramed(Framing::Auto, packet.data(), packet.size(), out));
    CHECK(out.empty());
}

TEST_CASE("framing: a stream split at every byte boundary, or fed byte by byte, gives the same packets") {
    const std::vector<Bytes> packets = {makePacket(16, 1), makePacket(1, 2), makePacket(45, 3), oscMessage(4)};
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        CAPTURE(std::string(describe(framing)));
        const Bytes stream = frame(framing, packets);
        for (size_t cut = 0; cut <= stream.size(); ++cut) {
            CAPTURE(cut);
            StreamDecoder decoder(framing);
            const Collected got = decode(decoder, stream, {cut});
            REQUIRE(got.error == FramingError::None);
            CHECK(got.packets == packets);
        }
        std::vector<size_t> everyByte;
        for (size_t i = 1; i < stream.size(); ++i) everyByte.push_back(i);
        StreamDecoder decoder(framing);
        const Collected got = decode(decoder, stream, everyByte);
        CHECK(got.error == FramingError::None);
        CHECK(got.packets == packets);
    }
}

TEST_CASE("framing: many packets in one chunk all arrive, in order") {
    std::vector<Bytes> packets;
    for (size_t i = 0; i < 1000; ++i) packets.push_back(makePacket(1 + (i * 13) % 200, static_cast<uint8_t>(i)));
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        StreamDecoder decoder(framing);
        const Collected got = decode(decoder, frame(framing, packets));
        CHECK(got.error == FramingError::None);
        CHECK(got.packets == packets);
    }
}

TEST_CASE("framing: SLIP skips empty packets (double END); a length prefix of 0 is skipped") {
    const Bytes message = oscMessage(1);
    Bytes slipStream = {slip::kEnd, slip::kEnd, slip::kEnd};
    appendFramed(Framing::Slip, message.data(), message.size(), slipStream);
    slipStream.insert(slipStream.end(), {slip::kEnd, slip::kEnd});
    StreamDecoder slipDecoder(Framing::Slip);
    const Collected fromSlip = decode(slipDecoder, slipStream);
    CHECK(fromSlip.error == FramingError::None);
    CHECK(fromSlip.packets == std::vector<Bytes>{message});

    Bytes prefixed = {0, 0, 0, 0};
    appendFramed(Framing::LengthPrefix, message.data(), message.size(), prefixed);
    prefixed.insert(prefixed.end(), {0, 0, 0, 0});
    StreamDecoder prefixDecoder(Framing::LengthPrefix);
    const Collected fromPrefix = decode(prefixDecoder, prefixed);
    CHECK(fromPrefix.error == FramingError::None);
    CHECK(fromPrefix.packets == std::vector<Bytes>{message});
}

TEST_CASE("framing: auto-detection decides on the first byte") {
    const Bytes message = oscMessage(7);
    struct Case {
        const char* name;
        Bytes stream;
        Framing expected;
    };
    Bytes bareSlip = frame(Framing::Slip, {message});  // SLIP without the leading END, as some senders write it
    bareSlip.erase(bareSlip.begin());
    const Bytes bundle = {'#', 'b', 'u', 'n', 'd', 'l', 'e', 0, 0, 0, 0, 0, 0, 0, 0, 1, slip::kEnd};
    const Case cases[] = {
        {"END", frame(Framing::Slip, {message}), Framing::Slip},
        {"'/'", bareSlip, Framing::Slip},
        {"'#'", bundle, Framing::Slip},
        {"0x00", frame(Framing::LengthPrefix, {message}), Framing::LengthPrefix},
    };
    for (const Case& c : cases) {
        CAPTURE(std::string(c.name));
        StreamDecoder decoder;
        CHECK(decoder.framing() == Framing::Auto);
        const Collected got = decode(decoder, c.stream);
        CHECK(got.error == FramingError::None);
        CHECK(decoder.framing() == c.expected);
        CHECK(got.packets.size() == 1);
    }
    for (uint8_t first : {uint8_t{'x'}, uint8_t{0x80}, uint8_t{0xDB}, uint8_t{0x01}}) {
        CAPTURE(int{first});
        StreamDecoder decoder;
        const Collected got = decode(decoder, Bytes{first, 0, 0, 0});
        CHECK(got.error == FramingError::Unrecognised);
        CHECK(got.packets.empty());
    }
    StreamDecoder empty;
    CHECK(decode(empty, Bytes{}).error == FramingError::None);
    CHECK(empty.framing() == Framing::Auto);
}

TEST_CASE("framing: a packet larger than the maximum is rejected, one of exactly the maximum is not") {
    constexpr size_t kMax = 1024;
    for (Framing framing : {Framing::Slip, Framing::LengthPrefix}) {
        CAPTURE(std::string(describe(framing)));
        StreamDecoder fits(framing, kMax);
        const Collected ok = decode(fits, frame(framing, {makePacket(kMax, 1)}));
        CHECK(ok.error == FramingError::None);
        CHECK(ok.packets.size() == 1);

        // Whole in one chunk, and byte by byte (the decoder must not hold more than the maximum).
        const Bytes stream = frame(framing, {makePacket(kMax + 1, 1)});
        StreamDecoder whole(framing, kMax);
        CHECK(decode(whole, stream).error == FramingError::Oversize);
        StreamDecoder trickled(framing, kMax);
        for (size_t i = 0; i < stream.size() && trickled.error() == FramingError::None; ++i) {
            trickled.feed(stream.data() + i, 1, [](const uint8_t*, size_t) {});
            CHECK(trickled.pendingBytes() <= kMax);
        }
        CHECK(trickled.error() == FramingError::Oversize);
    }
    // A SLIP packet with no END at all is cut off at the maximum, not buffered without end.
    const Bytes endless(5000, 'a');
    StreamDecoder slip(Framing::Slip, kMax);
    CHECK(decode(slip, endless).error == FramingError::Oversize);
    // A huge length is refused from the prefix alone, before any of the packet arrives.
    StreamDecoder huge(Framing::LengthPrefix);
    CHECK(decode(huge, Bytes{0x7f, 0xff, 0xff, 0xff}).error == FramingError::Oversize);
    StreamDecoder autoHuge;
    CHECK(decode(autoHuge, Bytes{0x00, 0x10, 0x00, 0x00}).error == FramingError::Oversize);  // 1 MiB
}

TEST_CASE("framing: malformed streams are rejected and the decoder stays failed") {
    SUBCASE("ESC followed by an ordinary byte") {
        StreamDecoder decoder(Framing::Slip);
        CHECK(decode(decoder, Bytes{slip::kEnd, '/', slip::kEsc, 'A', slip::kEnd}).error == FramingError::BadEscape);
    }
    SUBCASE("ESC followed by END") {
        StreamDecoder decoder(Framing::Slip);
        CHECK(decode(decoder, Bytes{'/', slip::kEsc, slip::kEnd}).error == FramingError::BadEscape);
    }
    SUBCASE("a negative length") {
        StreamDecoder decoder(Framing::LengthPrefix);
        CHECK(decode(decoder, Bytes{0xff, 0xff, 0xff, 0xfc, 1, 2, 3, 4}).error == FramingError::NegativeLength);
    }
    SUBCASE("an ESC at the end of one chunk and its partner in the next is fine") {
        StreamDecoder decoder(Framing::Slip);
        const Collected got = decode(decoder, Bytes{'/', slip::kEsc, slip::kEscEnd, slip::kEnd}, {2});
        CHECK(got.error == FramingError::None);
        CHECK(got.packets == std::vector<Bytes>{Bytes{'/', slip::kEnd}});
    }
    SUBCASE("packets before the error are delivered; nothing after it, ever") {
        const Bytes good = oscMessage(1);
        Bytes stream = frame(Framing::Slip, {good});
        stream.insert(stream.end(), {'/', slip::kEsc, 'z', slip::kEnd});
        const Bytes more = frame(Framing::Slip, {good});
        stream.insert(stream.end(), more.begin(), more.end());
        StreamDecoder decoder(Framing::Slip);
        const Collected got = decode(decoder, stream);
        CHECK(got.error == FramingError::BadEscape);
        CHECK(got.packets == std::vector<Bytes>{good});
        const Collected after = decode(decoder, more);
        CHECK(after.error == FramingError::BadEscape);
        CHECK(after.packets.empty());
        CHECK(decoder.pendingBytes() == 0);
    }
}
