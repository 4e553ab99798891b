#include "osc/allow_list.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace sustain {

bool AllowList::add(std::string_view text, std::string& error) {
    const std::string spec(text);
    const size_t slash = spec.find('/');
    const std::string address = spec.substr(0, slash);
    Network network{};
    if (inet_pton(AF_INET, address.c_str(), network.bytes) == 1) {
        network.family = AF_INET;
        network.prefix = 32;
    } else if (inet_pton(AF_INET6, address.c_str(), network.bytes) == 1) {
        network.family = AF_INET6;
        network.prefix = 128;
    } else {
        error = "--allow \"" + spec + "\": not an IPv4 or IPv6 address or network (e.g. 192.168.1.0/24)";
        return false;
    }
    if (slash != std::string::npos) {
        const std::string bits = spec.substr(slash + 1);
        char* end = nullptr;
        const unsigned long prefix = std::strtoul(bits.c_str(), &end, 10);
        if (bits.empty() || *end != '\0' || prefix > network.prefix) {
            error = "--allow \"" + spec + "\": prefix length must be 0.." + std::to_string(network.prefix);
            return false;
        }
        network.prefix = static_cast<unsigned>(prefix);
    }
    networks_.push_back(network);
    return true;
}

bool AllowList::allows(const sockaddr_storage& sender) const noexcept {
    if (networks_.empty()) return true;
    uint8_t bytes[16] = {};
    int family = sender.ss_family;
    if (family == AF_INET) {
        std::memcpy(bytes, &reinterpret_cast<const sockaddr_in&>(sender).sin_addr, 4);
    } else if (family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sender).sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&in6)) {  // an IPv4 sender on a dual-stack socket
            family = AF_INET;
            std::memcpy(bytes, in6.s6_addr + 12, 4);
        } else {
            std::memcpy(bytes, in6.s6_addr, 16);
        }
    } else {
        return false;
    }
    for (const Network& network : networks_) {
        if (network.family != family) continue;
        const unsigned full = network.prefix / 8, rest = network.prefix % 8;
        if (std::memcmp(bytes, network.bytes, full) != 0) continue;
        if (rest != 0) {
            const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
            if ((bytes[full] & mask) != (network.bytes[full] & mask)) continue;
        }
        return true;
    }
    return false;
}

}  // namespace sustain
