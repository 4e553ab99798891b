// Socket addresses of OSC clients: comparing them, showing them in logs, changing a port.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace sustain {

/// Whether two socket addresses name the same endpoint (family, address and port).
/// Thread: any.  RT-safe: yes.
bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b);

/// "127.0.0.1:53211" for logs. Thread: any.  RT-safe: no.
std::string describeAddress(const sockaddr_storage& address);

/// The same host at another port (IPv4 or IPv6; other families unchanged). Thread: any.
sockaddr_storage withPort(const sockaddr_storage& address, uint16_t port);

}  // namespace sustain
