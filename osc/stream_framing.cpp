#include "osc/stream_framing.h"

#include <algorithm>
#include <cstring>

namespace sustain {

const char* describe(Framing framing) noexcept {
    switch (framing) {
        case Framing::Auto: return "auto";
        case Framing::LengthPrefix: return "length-prefix";
        case Framing::Slip: return "SLIP";
    }
    return "unknown";
}

const char* describe(FramingError error) noexcept {
    switch (error) {
        case FramingError::None: return "ok";
        case FramingError::Unrecognised:
            return "first byte is neither SLIP (0xC0, '/', '#') nor a length prefix (0x00)";
        case FramingError::BadEscape: return "SLIP escape 0xDB not followed by 0xDC or 0xDD";
        case FramingError::NegativeLength: return "negative length prefix";
        case FramingError::Oversize: return "packet larger than the limit";
    }
    return "unknown";
}

bool appendFramed(Framing framing, const uint8_t* packet, size_t size, std::vector<uint8_t>& out) {
    if (framing == Framing::LengthPrefix) {
        if (size > 0x7fffffffu) return false;
        const auto length = static_cast<uint32_t>(size);
        const uint8_t prefix[4] = {static_cast<uint8_t>(length >> 24), static_cast<uint8_t>(length >> 16),
                                   static_cast<uint8_t>(length >> 8), static_cast<uint8_t>(length)};
        out.insert(out.end(), prefix, prefix + 4);
        out.insert(out.end(), packet, packet + size);
        return true;
    }
    if (framing != Framing::Slip) return false;
    // OSC payloads are mostly small integers and ASCII: escapes are rare, so this reserve
    // is nearly always exact.
    out.reserve(out.size() + size + 2);
    out.push_back(slip::kEnd);
    for (size_t i = 0; i < size; ++i) {
        const uint8_t byte = packet[i];
        if (byte == slip::kEnd) {
            out.push_back(slip::kEsc);
            out.push_back(slip::kEscEnd);
        } else if (byte == slip::kEsc) {
            out.push_back(slip::kEsc);
            out.push_back(slip::kEscEsc);
        } else {
            out.push_back(byte);
        }
    }
    out.push_back(slip::kEnd);
    return true;
}

StreamDecoder::StreamDecoder(Framing framing, size_t maxPacketBytes)
    : framing_(framing), maxPacketBytes_(maxPacketBytes) {}

FramingError StreamDecoder::fail(FramingError error) {
    error_ = error;
    // A failed stream is closed by its owner: give the memory back now.
    std::vector<uint8_t>().swap(packet_);
    return error;
}

FramingError StreamDecoder::feedChunk(const uint8_t* data, size_t size, const Sink& onPacket) {
    if (error_ != FramingError::None) return error_;
    if (size == 0) return FramingError::None;
    if (framing_ == Framing::Auto) {
        const uint8_t first = data[0];
        if (first == slip::kEnd || first == '/' || first == '#')
            framing_ = Framing::Slip;
        else if (first == 0x00)
            framing_ = Framing::LengthPrefix;
        else
            return fail(FramingError::Unrecognised);
    }
    return framing_ == Framing::Slip ? feedSlip(data, size, onPacket) : feedLengthPrefix(data, size, onPacket);
}

FramingError StreamDecoder::feedLengthPrefix(const uint8_t* data, size_t size, const Sink& onPacket) {
    size_t offset = 0;
    while (offset < size) {
        if (!haveLength_) {
            while (headerBytes_ < 4 && offset < size) header_[headerBytes_++] = data[offset++];
            if (headerBytes_ < 4) break;
            headerBytes_ = 0;
            const uint32_t length = (uint32_t{header_[0]} << 24) | (uint32_t{header_[1]} << 16) |
                                    (uint32_t{header_[2]} << 8) | uint32_t{header_[3]};
            if ((length & 0x80000000u) != 0) return fail(FramingError::NegativeLength);
            if (length > maxPacketBytes_) return fail(FramingError::Oversize);
            if (length == 0) continue;
            expected_ = length;
            haveLength_ = true;
        }
        const size_t available = size - offset;
        if (packet_.empty() && available >= expected_) {
            // The whole packet is in this chunk: hand it out without copying.
            onPacket(data + offset, expected_);
            offset += expected_;
            haveLength_ = false;
            continue;
        }
        const size_t take = std::min(expected_ - packet_.size(), available);
        packet_.insert(packet_.end(), data + offset, data + offset + take);
        offset += take;
        if (packet_.size() == expected_) {
            onPacket(packet_.data(), packet_.size());
            packet_.clear();
            haveLength_ = false;
        }
    }
    return FramingError::None;
}

FramingError StreamDecoder::feedSlip(const uint8_t* data, size_t size, const Sink& onPacket) {
    size_t offset = 0;
    while (offset < size) {
        if (escaped_) {
            escaped_ = false;
            const uint8_t byte = data[offset++];
            if (byte != slip::kEscEnd && byte != slip::kEscEsc) return fail(FramingError::BadEscape);
            if (packet_.size() >= maxPacketBytes_) return fail(FramingError::Oversize);
            packet_.push_back(byte == slip::kEscEnd ? slip::kEnd : slip::kEsc);
            continue;
        }
        // The run of ordinary bytes up to the next END or ESC.
        size_t run = offset;
        while (run < size && data[run] != slip::kEnd && data[run] != slip::kEsc) ++run;
        const size_t length = run - offset;
        if (packet_.empty() && run < size && data[run] == slip::kEnd) {
            // A whole packet without escapes in this chunk (the usual case): hand it out
            // without copying.
            if (length > maxPacketBytes_) return fail(FramingError::Oversize);
            if (length > 0) onPacket(data + offset, length);
            offset = run + 1;
            continue;
        }
        if (length > maxPacketBytes_ - packet_.size()) return fail(FramingError::Oversize);
        packet_.insert(packet_.end(), data + offset, data + run);
        offset = run;
        if (offset == size) break;
        if (data[offset] == slip::kEnd) {
            if (!packet_.empty()) onPacket(packet_.data(), packet_.size());
            packet_.clear();
        } else {
            escaped_ = true;
        }
        ++offset;
    }
    return FramingError::None;
}

}  // namespace sustain
