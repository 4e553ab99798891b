#include "hosts/link_protocol.h"

namespace sustain {

bool validNetName(const std::string& name) {
    if (name.empty() || name.size() > 31) return false;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                        c == '_' || c == '.';
        if (!ok) return false;
    }
    return true;
}

void appendLinkMessage(std::vector<uint8_t>& out, LinkType type, const void* payload, uint32_t length) {
    const LinkHeader header{kLinkMagic, static_cast<uint16_t>(type), 0, length};
    const auto* head = reinterpret_cast<const uint8_t*>(&header);
    out.insert(out.end(), head, head + sizeof header);
    const auto* body = static_cast<const uint8_t*>(payload);
    if (length > 0) out.insert(out.end(), body, body + length);
}

}  // namespace sustain
