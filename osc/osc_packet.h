// Walking an OSC packet: a message, or a bundle of messages and bundles.
//
// liblo 0.31 parses single messages well (lo_message_deserialise) but only dispatches
// bundles through an lo_server, which insists on binding a wildcard socket of its own.
// So the framing of bundles is walked here, with hard limits on depth and element count,
// and every message inside is handed to liblo's parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace sustain {

struct PacketLimits {
    int maxDepth = 4;             // a bundle inside a bundle inside ... at most this deep
    uint32_t maxElements = 4096;  // messages per packet, all levels together
};

enum class PacketError { None, NotOsc, BadBundle, TooDeep, TooManyElements };

namespace detail {
inline uint32_t readBigEndian32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline uint64_t readBigEndian64(const uint8_t* p) {
    return (uint64_t{readBigEndian32(p)} << 32) | readBigEndian32(p + 4);
}

template <typename OnMessage>
PacketError walk(const uint8_t* data, size_t size, uint64_t timetag, int depth, uint32_t& elements,
                 const PacketLimits& limits, OnMessage& onMessage) {
    if (size == 0) return PacketError::NotOsc;
    if (data[0] == '/') {
        if (++elements > limits.maxElements) return PacketError::TooManyElements;
        onMessage(data, size, timetag);
        return PacketError::None;
    }
    if (size < 16 || std::memcmp(data, "#bundle\0", 8) != 0) return PacketError::NotOsc;
    if (depth >= limits.maxDepth) return PacketError::TooDeep;
    const uint64_t bundleTimetag = readBigEndian64(data + 8);
    size_t offset = 16;
    while (offset < size) {
        if (size - offset < 4) return PacketError::BadBundle;
        const uint32_t length = readBigEndian32(data + offset);
        offset += 4;
        if (length == 0 || (length % 4) != 0 || length > size - offset) return PacketError::BadBundle;
        const PacketError inner =
            walk(data + offset, length, bundleTimetag, depth + 1, elements, limits, onMessage);
        if (inner != PacketError::None) return inner;
        offset += length;
    }
    return PacketError::None;
}
}  // namespace detail

/// Calls `onMessage(const uint8_t* data, size_t size, uint64_t timetag)` for each message
/// in the packet, in order; timetag is that of the innermost bundle (0 for a bare message;
/// 1 means "immediately" in OSC). Stops at the first structural error and returns it;
/// messages before it have been delivered. Thread: any.  RT-safe: yes.
template <typename OnMessage>
PacketError forEachMessage(const uint8_t* data, size_t size, OnMessage&& onMessage, const PacketLimits& limits = {}) {
    uint32_t elements = 0;
    return detail::walk(data, size, 0, 0, elements, limits, onMessage);
}

inline const char* describe(PacketError error) {
    switch (error) {
        case PacketError::None: return "ok";
        case PacketError::NotOsc: return "not an OSC message or bundle";
        case PacketError::BadBundle: return "bundle element size is invalid";
        case PacketError::TooDeep: return "bundles nested too deeply";
        case PacketError::TooManyElements: return "too many messages in one packet";
    }
    return "unknown";
}

}  // namespace sustain
