#include "osc/client_settings.h"

#include <algorithm>

#include "osc/socket_address.h"

namespace sustain {

sockaddr_storage ClientSettings::key(const sockaddr_storage& from) {
    return isLoopback(from) ? from : withPort(from, 0);
}

const ClientSettings::Host* ClientSettings::find(const sockaddr_storage& from) const {
    if (hosts_.empty()) return nullptr;
    const sockaddr_storage wanted = key(from);
    for (const Host& host : hosts_)
        if (sameEndpoint(host.address, wanted)) return &host;
    return nullptr;
}

ClientSettings::Host& ClientSettings::entry(const sockaddr_storage& from, uint64_t nowNs) {
    if (const Host* found = find(from)) {
        Host& host = hosts_[static_cast<size_t>(found - hosts_.data())];
        host.lastHeardNs = nowNs;
        return host;
    }
    if (hosts_.size() >= kMaxHosts)
        hosts_.erase(std::min_element(hosts_.begin(), hosts_.end(),
                                      [](const Host& a, const Host& b) { return a.lastHeardNs < b.lastHeardNs; }));
    hosts_.push_back({key(from), 0, false, nowNs});
    return hosts_.back();
}

void ClientSettings::dropDefaults() {
    hosts_.erase(std::remove_if(hosts_.begin(), hosts_.end(),
                                [](const Host& h) { return h.replyPort == 0 && !h.failReplies; }),
                 hosts_.end());
}

void ClientSettings::setReplyPort(const sockaddr_storage& from, uint16_t port, uint64_t nowNs) {
    entry(from, nowNs).replyPort = port;
    dropDefaults();
}

void ClientSettings::setFailReplies(const sockaddr_storage& from, bool on, uint64_t nowNs) {
    entry(from, nowNs).failReplies = on;
    dropDefaults();
}

sockaddr_storage ClientSettings::replyAddress(const sockaddr_storage& from) const {
    const Host* host = find(from);
    return host != nullptr && host->replyPort != 0 ? withPort(from, host->replyPort) : from;
}

bool ClientSettings::wantsFailReplies(const sockaddr_storage& from) const {
    const Host* host = find(from);
    return host != nullptr && host->failReplies;
}

void ClientSettings::heard(const sockaddr_storage& from, uint64_t nowNs) {
    if (hosts_.empty()) return;
    if (const Host* found = find(from)) hosts_[static_cast<size_t>(found - hosts_.data())].lastHeardNs = nowNs;
    hosts_.erase(std::remove_if(hosts_.begin(), hosts_.end(),
                                [&](const Host& h) { return nowNs - h.lastHeardNs > leaseNs_; }),
                 hosts_.end());
}

}  // namespace sustain
