// OSC over a byte stream (TCP): where one packet ends and the next begins.
//
// OSC 1.0 prefixes each packet with its size (int32, big-endian); OSC 1.1 wraps each in
// SLIP (RFC 1055). A stream has no datagram boundaries, so a read may hold half a packet
// or many; the decoder keeps what is incomplete and hands out each packet once it is whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace sustain {

enum class Framing : uint8_t {
    Auto,          // decided by the stream's first byte (see StreamDecoder)
    LengthPrefix,  // OSC 1.0: int32 big-endian size, then the packet
    Slip,          // OSC 1.1: RFC 1055, END after (and before) each packet
};

enum class FramingError : uint8_t {
    None,
    Unrecognised,    // Auto: the first byte is neither SLIP nor a length prefix
    BadEscape,       // SLIP: ESC followed by something other than ESC_END or ESC_ESC
    NegativeLength,  // length prefix with the sign bit set
    Oversize,        // a packet larger than the decoder's maximum
};

inline constexpr size_t kDefaultMaxStreamPacketBytes = size_t{64} * 1024;

namespace slip {
inline constexpr uint8_t kEnd = 0xC0;
inline constexpr uint8_t kEsc = 0xDB;
inline constexpr uint8_t kEscEnd = 0xDC;
inline constexpr uint8_t kEscEsc = 0xDD;
}  // namespace slip

/// "SLIP", "length-prefix" or "auto", for logs.  Thread: any.  RT-safe: yes.
const char* describe(Framing framing) noexcept;
/// What went wrong, in words, for logs.  Thread: any.  RT-safe: yes.
const char* describe(FramingError error) noexcept;

/// Appends `packet` to `out` in `framing`: SLIP as END, the escaped bytes, END (the
/// leading END flushes any line noise at a receiver); length-prefix as the 4-byte size
/// and the bytes. Returns false and appends nothing for Framing::Auto, which is not a
/// framing one can send in, or for a packet too large for an int32 prefix.
/// Thread: any.  RT-safe: no (may grow `out`).
bool appendFramed(Framing framing, const uint8_t* packet, size_t size, std::vector<uint8_t>& out);

/// Splits one connection's byte stream into OSC packets.
///
/// Framing::Auto decides on the stream's first byte: END (0xC0), '/' or '#' (the start
/// of an OSC message or bundle) means SLIP; 0x00 (the high byte of any size up to 16 MiB)
/// means a length prefix; anything else is FramingError::Unrecognised.
/// SLIP tolerates empty packets (END END, as OSC 1.1 senders write); a length prefix of 0
/// is skipped likewise. A packet grows no larger than `maxPacketBytes` in memory: the
/// decoder fails as soon as it knows a packet will exceed it.
///
/// After an error the decoder stays failed: every later feed() returns the same error and
/// delivers nothing. The stream cannot be resynchronised; the caller closes the connection.
class StreamDecoder {
public:
    explicit StreamDecoder(Framing framing = Framing::Auto, size_t maxPacketBytes = kDefaultMaxStreamPacketBytes);

    /// Consumes `size` bytes of the stream and calls `onPacket(const uint8_t*, size_t)`
    /// for every packet completed by them, in order. The pointer is valid only during the
    /// call. Packets completed before an error in the same chunk are delivered.
    /// Returns FramingError::None or the error that stopped the stream.
    /// Thread: the decoder's owner.  RT-safe: no (may grow its packet buffer, once, up to
    /// maxPacketBytes).
    template <typename OnPacket>
    FramingError feed(const uint8_t* data, size_t size, OnPacket&& onPacket) {
        auto* target = std::addressof(onPacket);
        using Target = std::remove_pointer_t<decltype(target)>;
        return feedChunk(data, size, Sink{const_cast<void*>(static_cast<const void*>(target)),
                                          [](void* context, const uint8_t* packet, size_t length) {
                                              (*static_cast<Target*>(context))(packet, length);
                                          }});
    }

    /// The framing in use: Auto until the first byte has been seen.
    Framing framing() const noexcept { return framing_; }
    FramingError error() const noexcept { return error_; }
    /// Bytes of an incomplete packet held: 0 between packets. (SLIP: after unescaping,
    /// plus a pending ESC; length prefix: the prefix's bytes while it is incomplete.)
    size_t pendingBytes() const noexcept { return packet_.size() + headerBytes_ + (escaped_ ? 1 : 0); }
    size_t maxPacketBytes() const noexcept { return maxPacketBytes_; }

private:
    struct Sink {
        void* context;
        void (*call)(void* context, const uint8_t* packet, size_t size);
        void operator()(const uint8_t* packet, size_t size) const { call(context, packet, size); }
    };
    FramingError feedChunk(const uint8_t* data, size_t size, const Sink& onPacket);
    FramingError feedLengthPrefix(const uint8_t* data, size_t size, const Sink& onPacket);
    FramingError feedSlip(const uint8_t* data, size_t size, const Sink& onPacket);
    FramingError fail(FramingError error);

    Framing framing_;
    size_t maxPacketBytes_;
    FramingError error_ = FramingError::None;
    std::vector<uint8_t> packet_;  // the incomplete packet (SLIP: already unescaped)
    // Length prefix: the prefix's bytes while it is incomplete, then the packet's size.
    uint8_t header_[4] = {};
    size_t headerBytes_ = 0;
    size_t expected_ = 0;
    bool haveLength_ = false;
    bool escaped_ = false;  // SLIP: the previous byte was ESC
};

}  // namespace sustain
