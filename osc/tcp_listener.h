// OSC over TCP, beside UDP: a listening socket and its connections, driven by the OSC
// thread's poll loop. No thread of its own: the owner adds its descriptors to poll() and
// hands back what poll() reported.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "osc/allow_list.h"
#include "osc/rate_limited_log.h"
#include "osc/stream_framing.h"

namespace sustain {

struct TcpListenerOptions {
    Framing framing = Framing::Auto;        // per connection, from its first byte
    size_t maxConnections = 16;             // one more is accepted and closed at once
    size_t maxPacketBytes = kDefaultMaxStreamPacketBytes;
    size_t maxOutgoingBytes = size_t{256} * 1024;   // per connection; a reply that does not fit is dropped
    int sendBufferBytes = 0;                // SO_SNDBUF of each connection; 0: the kernel's
    // A packet still incomplete this long after its first byte closes the connection: a
    // peer cannot hold a slot and a packet buffer by sending half a packet and waiting
    // (or trickling the rest a byte at a time).
    uint64_t stalledPacketNs = 10'000'000'000ull;
    // A connection that sends nothing for this long is closed; 0: never. sustaind sets its
    // --lease (docs/clients.md): a client that only listens renews it with any message.
    uint64_t idleNs = 0;
    // With every place taken, a newcomer closes the connection silent the longest, if it
    // has been silent this long: silence never holds a place against someone who talks.
    uint64_t evictQuietNs = 5'000'000'000ull;
    AllowList allow;                        // empty: whoever can reach the address
};

/// What happened, since open(). Plain integers, so the owner can copy them into shared
/// memory as it likes.
struct TcpCounters {
    uint64_t accepted = 0;         // connections taken into service
    uint64_t refusedLimit = 0;     // accepted and closed at once: maxConnections reached, none quiet enough to evict
    uint64_t evicted = 0;          // closed to make room for a newcomer: silent the longest
    uint64_t refusedSender = 0;    // accepted and closed at once: the allow list does not admit the peer
    uint64_t closedByPeer = 0;     // orderly end of stream, or a reset
    uint64_t closedOnError = 0;    // closed by us: framing error, oversize, stall, socket error
    uint64_t framingErrors = 0;    // unrecognised framing, bad SLIP escape, negative length
    uint64_t oversize = 0;         // a packet above maxPacketBytes
    uint64_t stalled = 0;          // closed for a packet still incomplete after stalledPacketNs
    uint64_t idle = 0;             // closed for silence longer than idleNs
    uint64_t packets = 0;          // complete packets handed to the owner
    uint64_t repliesSent = 0;      // replies queued or written in full
    uint64_t repliesDropped = 0;   // replies that did not fit, or to a connection gone or not yet framed
};

/// Receives OSC packets over TCP (IPv4 or IPv6) and sends replies on the same connection.
///
/// Policies: at most maxConnections, a newcomer taking the place of one silent for
/// evictQuietNs or longer; a peer the allow list does not admit is closed at
/// once; a framing error or an oversize packet closes its connection (the stream cannot be
/// resynchronised); replies go through a bounded buffer per connection, and a reply that
/// does not fit whole is dropped and counted, so a peer that never reads cannot block the
/// OSC thread. Everything is counted in TcpCounters; refusals and errors are logged,
/// rate-limited.
class TcpListener {
public:
    /// A complete packet (a message or a bundle, not yet parsed) from connection
    /// `connection`, whose peer is `peer`. The bytes are valid only during the call.
    using PacketHandler =
        std::function<void(const uint8_t* packet, size_t size, const sockaddr_storage& peer, uint32_t connection)>;

    explicit TcpListener(TcpListenerOptions options = {});
    ~TcpListener();
    TcpListener(const TcpListener&) = delete;
    TcpListener& operator=(const TcpListener&) = delete;

    /// Binds and listens on `bindAddress` (IPv4 or IPv6 literal) and `port` (0: any free
    /// port, see boundPort()). Thread: main, before the OSC thread starts.  RT-safe: no.
    /// Errors: false with `error` saying what failed and the fix (not an address, port in
    /// use, no interface with this address), and errno the cause when a call failed
    /// (EADDRINUSE: port in use).
    bool open(const std::string& bindAddress, uint16_t port, std::string& error);

    /// Appends the descriptors to poll: the listening socket (POLLIN) and each connection
    /// (POLLIN, and POLLOUT while replies wait). Call before every poll(), after handle():
    /// the set changes as connections come and go. Thread: the OSC thread.  RT-safe: no.
    void addPollFds(std::vector<pollfd>& fds);

    /// Acts on what poll() reported for the entries addPollFds() appended (`fds` points at
    /// the first of them, `n` is how many): accepts, reads, calls `onPacket` for every
    /// complete packet, writes waiting replies, closes what must be closed. Call after
    /// every poll() return, a timeout included: stall and idle checks run here.
    /// `onPacket` may call send(); it must not call closeAll().
    /// Thread: the OSC thread.  RT-safe: no (system calls, logs).
    void handle(const pollfd* fds, size_t n, const PacketHandler& onPacket);

    /// Frames `packet` in the connection's framing and queues it; writes at once what the
    /// socket takes. False, counted in repliesDropped, when the connection is gone, its
    /// framing is not yet known (it has sent nothing), or the reply does not fit whole in
    /// its outgoing buffer. Never blocks. Thread: the OSC thread.  RT-safe: no.
    bool send(uint32_t connection, const uint8_t* packet, size_t size);

    /// Closes every connection and the listening socket. Thread: the OSC thread, or main
    /// once it has stopped.  RT-safe: no.
    void closeAll();

    /// The port bound by open() (the one chosen, when 0 was asked for).
    uint16_t boundPort() const noexcept { return boundPort_; }
    size_t connectionCount() const noexcept { return connections_.size(); }
    const TcpCounters& counters() const noexcept { return counters_; }

private:
    enum class CloseReason : uint8_t { None, Peer, SocketError, Framing, Stalled, Idle };
    struct Connection {
        int fd = -1;
        uint32_t id = 0;
        sockaddr_storage peer{};
        StreamDecoder decoder;
        std::vector<uint8_t> outgoing;  // framed replies not yet taken by the socket
        uint64_t lastReceiveNs = 0;
        uint64_t pendingSinceNs = 0;    // when the incomplete packet began; 0: none
        CloseReason closing = CloseReason::None;
    };

    Connection* find(uint32_t id);
    void acceptAll(uint64_t nowNs);
    void receive(Connection& connection, uint64_t nowNs, const PacketHandler& onPacket);
    void flush(Connection& connection);
    void checkTimers(Connection& connection, uint64_t nowNs);
    void closeFinished();
    bool evictQuietest(uint64_t nowNs);

    TcpListenerOptions options_;
    int listenFd_ = -1;
    uint16_t boundPort_ = 0;
    uint32_t nextId_ = 1;
    uint64_t acceptPausedUntilNs_ = 0;  // out of descriptors: stop polling the listener briefly
    std::vector<Connection> connections_;
    std::vector<uint8_t> readBuffer_;    // one, shared by all connections; allocated by open()
    std::vector<uint8_t> frameBuffer_;   // send(): the framed reply
    TcpCounters counters_;
    RateLimitedLog<16> log_;
};

}  // namespace sustain
