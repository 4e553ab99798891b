#include "osc/socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace sustain {

bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
    // Field by field: the bytes of a sockaddr_storage past the address family's own struct
    // are whatever the buffer held before, so two equal endpoints may differ there.
    if (a.ss_family != b.ss_family) return false;
    if (a.ss_family == AF_INET) {
        const auto& x = reinterpret_cast<const sockaddr_in&>(a);
        const auto& y = reinterpret_cast<const sockaddr_in&>(b);
        return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    if (a.ss_family == AF_INET6) {
        const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
        const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
        return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
    }
    return false;
}

bool isLoopback(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr) >> 24) == 127;
    if (address.ss_family == AF_INET6) {
        const in6_addr& a = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
    }
    return false;
}

uint64_t endpointKey(const sockaddr_storage& address) {
    // FNV-1a over the fields sameEndpoint() compares, nothing else of the storage.
    uint64_t key = 14695981039346656037ull;
    auto mix = [&key](const void* bytes, size_t size) {
        for (size_t i = 0; i < size; ++i) {
            key ^= static_cast<const uint8_t*>(bytes)[i];
            key *= 1099511628211ull;
        }
    };
    mix(&address.ss_family, sizeof address.ss_family);
    if (address.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(address);
        mix(&in.sin_addr, sizeof in.sin_addr);
        mix(&in.sin_port, sizeof in.sin_port);
    } else if (address.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
        mix(&in6.sin6_addr, sizeof in6.sin6_addr);
        mix(&in6.sin6_port, sizeof in6.sin6_port);
    }
    return key;
}

std::string describeAddress(const sockaddr_storage& address) {
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (address.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(address);
        inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
        port = ntohs(in.sin_port);
    } else if (address.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
        inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
        port = ntohs(in6.sin6_port);
    }
    return std::string(host) + ":" + std::to_string(port);
}

sockaddr_storage withPort(const sockaddr_storage& address, uint16_t port) {
    sockaddr_storage moved = address;
    if (moved.ss_family == AF_INET)
        reinterpret_cast<sockaddr_in&>(moved).sin_port = htons(port);
    else if (moved.ss_family == AF_INET6)
        reinterpret_cast<sockaddr_in6&>(moved).sin6_port = htons(port);
    return moved;
}

}  // namespace sustain
