// Socket addresses of OSC clients: comparing them, showing them in logs, changing a port.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace sustain {

/// Whether two socket addresses name the same endpoint (family, address and port).
/// Thread: any.  RT-safe: yes.
bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b);

/// Whether the address is a loopback one (127.0.0.0/8, ::1, or IPv4-mapped 127.x): only a
/// process on this machine can send from it. Thread: any.  RT-safe: yes.
bool isLoopback(const sockaddr_storage& address);

/// A 64-bit key of the endpoint (family, address, port), equal for sameEndpoint() ones.
/// Thread: any.  RT-safe: yes.
uint64_t endpointKey(const sockaddr_storage& address);

/// "127.0.0.1:53211" for logs. Thread: any.  RT-safe: no.
std::string describeAddress(const sockaddr_storage& address);

/// The same host at another port (IPv4 or IPv6; other families unchanged). Thread: any.
sockaddr_storage withPort(const sockaddr_storage& address, uint16_t port);

}  // namespace sustain
