#include "osc/reply_ports.h"

#include <algorithm>

#include "osc/socket_address.h"

namespace sustain {

sockaddr_storage ReplyPorts::key(const sockaddr_storage& from) {
    return isLoopback(from) ? from : withPort(from, 0);
}

const ReplyPorts::Host* ReplyPorts::find(const sockaddr_storage& from) const {
    const sockaddr_storage wanted = key(from);
    for (const Host& entry : hosts_)
        if (sameEndpoint(entry.address, wanted)) return &entry;
    return nullptr;
}

ReplyPorts::Host* ReplyPorts::find(const sockaddr_storage& from) {
    return const_cast<Host*>(static_cast<const ReplyPorts*>(this)->find(from));
}

void ReplyPorts::set(const sockaddr_storage& from, uint16_t port, uint64_t nowNs) {
    if (Host* entry = find(from)) {
        if (port == 0) {
            hosts_.erase(hosts_.begin() + (entry - hosts_.data()));
            return;
        }
        entry->port = port;
        entry->lastHeardNs = nowNs;
        return;
    }
    if (port == 0) return;
    if (hosts_.size() >= kMaxHosts)
        hosts_.erase(std::min_element(hosts_.begin(), hosts_.end(),
                                      [](const Host& a, const Host& b) { return a.lastHeardNs < b.lastHeardNs; }));
    hosts_.push_back({key(from), port, nowNs});
}

sockaddr_storage ReplyPorts::replyAddress(const sockaddr_storage& from) const {
    const Host* entry = hosts_.empty() ? nullptr : find(from);
    return entry != nullptr ? withPort(from, entry->port) : from;
}

void ReplyPorts::heard(const sockaddr_storage& from, uint64_t nowNs) {
    if (hosts_.empty()) return;
    if (Host* entry = find(from)) entry->lastHeardNs = nowNs;
    hosts_.erase(std::remove_if(hosts_.begin(), hosts_.end(),
                                [&](const Host& h) { return nowNs - h.lastHeardNs > leaseNs_; }),
                 hosts_.end());
}

}  // namespace sustain
