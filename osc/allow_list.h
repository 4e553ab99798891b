// Who may send OSC: addresses and CIDR ranges given with --allow.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sustain {

/// A list of IPv4/IPv6 networks. Empty allows everyone (the socket's --bind already limits
/// who can reach it; 127.0.0.1 by default).
class AllowList {
public:
    /// Adds "192.168.1.0/24", "10.0.0.7" or "::1/128"; false with `error` set if malformed.
    /// Thread: main, before the OSC thread starts.  RT-safe: no.
    bool add(std::string_view text, std::string& error);

    /// Whether a sender may control the engine. Thread: the OSC thread.  RT-safe: yes.
    bool allows(const sockaddr_storage& sender) const noexcept;

    bool empty() const { return networks_.empty(); }

private:
    struct Network {
        int family;          // AF_INET or AF_INET6
        uint8_t bytes[16];
        unsigned prefix;     // bits that must match
    };
    std::vector<Network> networks_;
};

}  // namespace sustain
