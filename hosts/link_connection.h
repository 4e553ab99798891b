// One end of a link (hosts/link_protocol.h) over a non-blocking TCP socket, with bounded
// buffers both ways. Thread: the one that owns it.  RT-safe: no.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hosts/link_protocol.h"

namespace sustain {

class LinkConnection {
public:
    /// Bytes waiting to be sent beyond which the peer is too slow: the link is closed (a
    /// render host that comes back gets a snapshot; it does not need the backlog).
    static constexpr size_t kMaxBacklog = 4u << 20;

    LinkConnection() = default;
    explicit LinkConnection(int fd) : fd_(fd) {}
    LinkConnection(LinkConnection&& other) noexcept { *this = std::move(other); }
    LinkConnection& operator=(LinkConnection&& other) noexcept;
    LinkConnection(const LinkConnection&) = delete;
    LinkConnection& operator=(const LinkConnection&) = delete;
    ~LinkConnection() { close(); }

    /// Connects to `address`:`port` (IPv4 or IPv6 literal or name), waiting at most
    /// `timeoutMs`. Errors: false with `error` set.
    bool connectTo(const std::string& address, uint16_t port, int timeoutMs, std::string& error);

    bool open() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    void close();

    /// Queues a message and sends what the socket takes now; false once the link is closed
    /// (an error, or the backlog grew beyond kMaxBacklog).
    bool send(LinkType type, const void* payload, uint32_t length);
    /// Sends what waits; false once the link is closed.
    bool flush();
    bool wantsWrite() const { return sent_ < out_.size(); }

    /// Reads what arrived and hands each complete message to `onMessage(type, payload,
    /// length)`; false once the link is closed (EOF, error, not this protocol).
    template <typename OnMessage>
    bool receive(OnMessage&& onMessage) {
        if (!readAvailable()) return false;
        if (!takeLinkMessages(in_, onMessage)) {
            error_ = "not a sustain link";
            close();
            return false;
        }
        return open();
    }

    const std::string& error() const { return error_; }

private:
    bool readAvailable();

    int fd_ = -1;
    std::vector<uint8_t> in_;
    std::vector<uint8_t> out_;
    size_t sent_ = 0;
    std::string error_;
};

}  // namespace sustain
