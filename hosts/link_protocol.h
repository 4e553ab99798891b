// The link between the audio host and a render host: one TCP connection per render host,
// opened by the render host (sustaind --role render --audio-host ADDR), carrying what the
// render host needs to render in step and nothing else. Audio never crosses it: netjack2
// carries the blocks (docs/hosts.md).
//
// Every message is a LinkHeader and `length` bytes of payload. Both ends must be the same
// version of sustain on the same architecture: the payloads are the engine's own structs,
// and rendering alike needs the same code (the render host says its version in its Hello).
//
//   render host                           audio host
//   Hello (version, name)                 ──▶
//                                          ◀── Welcome (rate, frames, voices, ramp, playout, row) or Refused (why)
//                                          ◀── Snapshot (the state after block s), then the
//                                              Commands waiting for blocks after s, then every
//                                              new Command as it is accepted
//   ResyncRequest (a late command, or too far behind)  ──▶   ◀── Snapshot ...
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "hosts/tagged_render.h"
#include "shm/layout.h"

namespace sustain {

inline constexpr uint32_t kLinkMagic = 0x53484c4b;  // "SHLK"
inline constexpr uint32_t kLinkProtocol = 1;
inline constexpr uint16_t kDefaultHostPort = 9100;
inline constexpr uint32_t kMaxLinkPayload = 64 * 1024;

enum class LinkType : uint16_t { Hello = 1, Welcome = 2, Refused = 3, Snapshot = 4, Command = 5, ResyncRequest = 6 };

struct LinkHeader {
    uint32_t magic;
    uint16_t type;  // LinkType
    uint16_t reserved;
    uint32_t length;  // payload bytes
};
static_assert(sizeof(LinkHeader) == 12);

struct HelloPayload {
    uint32_t protocol;
    uint32_t reserved;
    char version[16];  // SUSTAIN_VERSION
    char netName[32];  // the render host's netjack2 client name on the audio host's JACK server
};

struct WelcomePayload {
    uint32_t protocol;
    uint32_t slot;            // the audio host's row for this render host
    uint32_t sampleRate;      // the render host's JACK server must run at these
    uint32_t framesPerBuffer;
    uint32_t voices;
    uint32_t rampSamples;
    uint32_t playoutPeriods;  // how far ahead of play the audio host asks for blocks
    uint32_t reserved;
};

struct RefusedPayload {
    char reason[200];
};

struct SnapshotPayload {
    uint64_t reserved;
    RenderState state;    // the state after block state.blocks - 1
};

/// A render host's name on the audio host's JACK server: letters, digits, '-', '_' and
/// '.', 1..31 characters (it becomes part of JACK port names; nothing else is accepted).
bool validNetName(const std::string& name);

/// Appends one message to `out`.
void appendLinkMessage(std::vector<uint8_t>& out, LinkType type, const void* payload, uint32_t length);

/// Splits complete messages off the front of `buffer` (bytes read so far), calling
/// `onMessage(type, payload, length)` for each; the rest waits for more bytes.
/// Returns false on a stream that is not this protocol (bad magic, oversize): close it.
template <typename OnMessage>
bool takeLinkMessages(std::vector<uint8_t>& buffer, OnMessage&& onMessage) {
    size_t at = 0;
    while (buffer.size() - at >= sizeof(LinkHeader)) {
        LinkHeader header;
        std::memcpy(&header, buffer.data() + at, sizeof header);
        if (header.magic != kLinkMagic || header.length > kMaxLinkPayload) return false;
        if (buffer.size() - at - sizeof header < header.length) break;
        onMessage(static_cast<LinkType>(header.type), buffer.data() + at + sizeof header, header.length);
        at += sizeof header + header.length;
    }
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(at));
    return true;
}

}  // namespace sustain
