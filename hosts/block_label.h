// Numbers carried inside audio: the label of a block on netjack2's channels.
//
// netjack2 carries audio, nothing else, between the audio host and a render host. So the
// block number (and whatever else the other side must know about a block) travels as
// samples on a channel of its own: each 16-bit piece of a number is one sample holding that
// integer as a float, which is exact (floats hold integers up to 2^24), and netjack2's
// default float encoding carries floats bit for bit (tools/hosts/FACTS.md). A label starts
// with a marker and ends with a checksum, so that silence (a slave gone, a port
// disconnected) or anything else that is not a label is never taken for one.
// All functions: Thread: any.  RT-safe: yes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sustain {

/// What the audio host asks of the render hosts in a cycle: render block `tag`.
struct RenderRequest {
    uint64_t tag = 0;
};

/// What a render host says about the block it sends beside it.
struct BlockLabel {
    uint64_t tag = 0;            // the block's number: the audio host's cycle in which it is to be played
    uint64_t lastSequence = 0;   // the newest command (OSC sequence number) the block's state holds
    uint32_t snapshot = 0;       // how many snapshots this host started from (changes when it re-synced)
    bool inStep = false;         // rendered from the audio host's state and every command on time
};

inline constexpr float kLabelMarker = 12289.0f;  // an integer no sine at gain <= 1 produces
inline constexpr uint32_t kRequestSamples = 5;   // marker, tag (3), checksum
inline constexpr uint32_t kLabelSamples = 10;    // marker, tag (3), sequence (3), snapshot, flags, checksum

namespace label_detail {
inline void putWord(float* out, uint32_t& at, uint64_t value, int pieces) noexcept {
    for (int piece = 0; piece < pieces; ++piece) out[at++] = static_cast<float>((value >> (16 * piece)) & 0xffff);
}
inline bool getWord(const float* in, uint32_t& at, int pieces, uint64_t& value) noexcept {
    value = 0;
    for (int piece = 0; piece < pieces; ++piece) {
        const float sample = in[at++];
        if (!(sample >= 0.0f && sample <= 65535.0f)) return false;
        const auto word = static_cast<uint64_t>(sample);
        if (static_cast<float>(word) != sample) return false;
        value |= word << (16 * piece);
    }
    return true;
}
inline float checksum(const float* in, uint32_t count) noexcept {
    uint32_t sum = 0;
    for (uint32_t i = 0; i < count; ++i) sum = (sum * 31 + static_cast<uint32_t>(in[i])) & 0xffff;
    return static_cast<float>(sum);
}
}  // namespace label_detail

/// Writes `request` at the start of `out` and zeros the rest of the `frames` samples.
inline void writeRequest(float* out, uint32_t frames, const RenderRequest& request) noexcept {
    for (uint32_t i = 0; i < frames; ++i) out[i] = 0.0f;
    if (frames < kRequestSamples) return;
    uint32_t at = 0;
    out[at++] = kLabelMarker;
    label_detail::putWord(out, at, request.tag, 3);
    out[at] = label_detail::checksum(out, at);
}

/// Reads a request; false when `in` holds none (silence, a torn or foreign signal).
inline bool readRequest(const float* in, uint32_t frames, RenderRequest& request) noexcept {
    if (frames < kRequestSamples || in[0] != kLabelMarker) return false;
    uint32_t at = 1;
    uint64_t tag = 0;
    if (!label_detail::getWord(in, at, 3, tag) || in[at] != label_detail::checksum(in, at)) return false;
    request.tag = tag;
    return true;
}

/// Writes `label` at the start of `out` and zeros the rest of the `frames` samples.
inline void writeLabel(float* out, uint32_t frames, const BlockLabel& label) noexcept {
    for (uint32_t i = 0; i < frames; ++i) out[i] = 0.0f;
    if (frames < kLabelSamples) return;
    uint32_t at = 0;
    out[at++] = kLabelMarker;
    label_detail::putWord(out, at, label.tag, 3);
    label_detail::putWord(out, at, label.lastSequence, 3);
    label_detail::putWord(out, at, label.snapshot, 1);
    out[at++] = label.inStep ? 1.0f : 0.0f;
    out[at] = label_detail::checksum(out, at);
}

/// Reads a label; false when `in` holds none.
inline bool readLabel(const float* in, uint32_t frames, BlockLabel& label) noexcept {
    if (frames < kLabelSamples || in[0] != kLabelMarker) return false;
    uint32_t at = 1;
    uint64_t tag = 0;
    uint64_t sequence = 0;
    uint64_t snapshot = 0;
    uint64_t flags = 0;
    if (!label_detail::getWord(in, at, 3, tag) || !label_detail::getWord(in, at, 3, sequence) ||
        !label_detail::getWord(in, at, 1, snapshot) || !label_detail::getWord(in, at, 1, flags) || flags > 1 ||
        in[at] != label_detail::checksum(in, at))
        return false;
    label.tag = tag;
    label.lastSequence = sequence;
    label.snapshot = static_cast<uint32_t>(snapshot);
    label.inStep = flags == 1;
    return true;
}

}  // namespace sustain
