#include "osc/tcp_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "osc/osc_server.h"
#include "shm/clock.h"

namespace sustain {

namespace {
constexpr size_t kReadBytes = size_t{64} * 1024;
constexpr int kReadsPerTurn = 4;     // per connection and handle(): one busy peer cannot starve UDP
constexpr int kAcceptsPerTurn = 16;
constexpr int kBacklog = 32;
constexpr uint64_t kAcceptPauseNs = 100'000'000;  // out of descriptors: try again in 100 ms
// Keepalive finds peers that vanished without a FIN (cable pulled, laptop asleep) in
// about 90 s, so they do not hold a connection slot forever.
constexpr int kKeepIdleSeconds = 60;
constexpr int kKeepIntervalSeconds = 10;
constexpr int kKeepCount = 3;

// Log keys: one rate limit per kind of event.
enum LogKey : size_t { kLogLimit, kLogSender, kLogFraming, kLogStalled, kLogIdle, kLogSocket, kLogAccept, kLogDropped, kLogEvicted };

bool wouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }
}  // namespace

TcpListener::TcpListener(TcpListenerOptions options) : options_(std::move(options)) {}

TcpListener::~TcpListener() { closeAll(); }

bool TcpListener::open(const std::string& bindAddress, uint16_t port, std::string& error) {
    closeAll();
    sockaddr_storage address{};
    socklen_t length = 0;
    auto* in = reinterpret_cast<sockaddr_in*>(&address);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    if (inet_pton(AF_INET, bindAddress.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        length = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, bindAddress.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        length = sizeof(sockaddr_in6);
    } else {
        error = "OSC over TCP: \"" + bindAddress + "\" is not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)";
        return false;
    }
    const std::string where = "tcp " + bindAddress + ":" + std::to_string(port);
    listenFd_ = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listenFd_ < 0) {
        error = std::string("cannot create a TCP socket: ") + std::strerror(errno);
        return false;
    }
    // A restarted sustaind must be able to listen again while the previous run's
    // connections sit in TIME_WAIT.
    const int one = 1;
    setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listenFd_, reinterpret_cast<sockaddr*>(&address), length) != 0 || listen(listenFd_, kBacklog) != 0) {
        const int err = errno;
        error = "cannot listen for OSC on " + where + ": " + std::strerror(err);
        if (err == EADDRINUSE) error += " (another program uses this port; choose another)";
        if (err == EADDRNOTAVAIL) error += " (no interface has this address; check the bind address)";
        if (err == EACCES) error += " (ports below 1024 need privileges; choose a higher one)";
        closeAll();
        errno = err;
        return false;
    }
    sockaddr_storage bound{};
    socklen_t boundLength = sizeof bound;
    getsockname(listenFd_, reinterpret_cast<sockaddr*>(&bound), &boundLength);
    boundPort_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(bound).sin_port
                                                  : reinterpret_cast<sockaddr_in6&>(bound).sin6_port);
    readBuffer_.assign(kReadBytes, 0);
    connections_.reserve(options_.maxConnections);
    return true;
}

void TcpListener::closeAll() {
    for (Connection& connection : connections_) close(connection.fd);
    connections_.clear();
    if (listenFd_ >= 0) close(listenFd_);
    listenFd_ = -1;
}

void TcpListener::addPollFds(std::vector<pollfd>& fds) {
    if (listenFd_ >= 0 && monotonicNs() >= acceptPausedUntilNs_) fds.push_back({listenFd_, POLLIN, 0});
    for (const Connection& connection : connections_) {
        const short events = connection.outgoing.empty() ? POLLIN : static_cast<short>(POLLIN | POLLOUT);
        fds.push_back({connection.fd, events, 0});
    }
}

void TcpListener::handle(const pollfd* fds, size_t n, const PacketHandler& onPacket) {
    const uint64_t nowNs = monotonicNs();
    bool listenerReady = false;
    for (size_t i = 0; i < n; ++i) {
        const pollfd& entry = fds[i];
        if (entry.revents == 0) continue;
        if (entry.fd == listenFd_) {
            listenerReady = true;
            continue;
        }
        // Connections are closed only below and accepted only after this loop, so a
        // descriptor still names the connection it named in addPollFds().
        const auto found = std::find_if(connections_.begin(), connections_.end(),
                                        [&](const Connection& c) { return c.fd == entry.fd; });
        if (found == connections_.end() || found->closing != CloseReason::None) continue;
        if (entry.revents & POLLNVAL) {
            found->closing = CloseReason::SocketError;
            continue;
        }
        if (entry.revents & POLLOUT) flush(*found);
        // recv() reports an end of stream (POLLHUP) or a pending error (POLLERR) itself.
        if ((entry.revents & (POLLIN | POLLHUP | POLLERR)) && found->closing == CloseReason::None)
            receive(*found, nowNs, onPacket);
    }
    for (Connection& connection : connections_)
        if (connection.closing == CloseReason::None) checkTimers(connection, nowNs);
    closeFinished();
    if (listenerReady) acceptAll(nowNs);
}

void TcpListener::acceptAll(uint64_t nowNs) {
    for (int i = 0; i < kAcceptsPerTurn; ++i) {
        sockaddr_storage peer{};
        socklen_t length = sizeof peer;
        const int fd = accept4(listenFd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            if (wouldBlock(err)) return;
            if (err == EINTR || err == ECONNABORTED) continue;
            // Out of descriptors or memory: the pending connection stays in the backlog and
            // the listener would poll readable at once, forever; stop polling it briefly.
            acceptPausedUntilNs_ = nowNs + kAcceptPauseNs;
            log_.warn(kLogAccept, std::string("OSC over TCP: cannot accept a connection: ") + std::strerror(err) +
                                      "; trying again in 100 ms");
            return;
        }
        if (!options_.allow.allows(peer)) {
            close(fd);
            ++counters_.refusedSender;
            log_.warn(kLogSender, "OSC over TCP: connection from " + describeAddress(peer) +
                                      ", which the allow list does not admit; closed");
            continue;
        }
        if (connections_.size() >= options_.maxConnections && !evictQuietest(nowNs)) {
            close(fd);
            ++counters_.refusedLimit;
            log_.warn(kLogLimit, "OSC over TCP: connection from " + describeAddress(peer) + " refused: already " +
                                     std::to_string(options_.maxConnections) + " connections; closed");
            continue;
        }
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // replies are small and wanted now
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &kKeepIdleSeconds, sizeof kKeepIdleSeconds);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepIntervalSeconds, sizeof kKeepIntervalSeconds);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepCount, sizeof kKeepCount);
        if (options_.sendBufferBytes > 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &options_.sendBufferBytes, sizeof options_.sendBufferBytes);
        Connection connection{fd, nextId_, peer, StreamDecoder(options_.framing, options_.maxPacketBytes), {}, nowNs, 0,
                              CloseReason::None};
        nextId_ = nextId_ == UINT32_MAX ? 1 : nextId_ + 1;  // 0 is never an id
        connections_.push_back(std::move(connection));
        ++counters_.accepted;
        spdlog::debug("OSC over TCP: {} connected (connection {})", describeAddress(peer), connections_.back().id);
    }
}

void TcpListener::receive(Connection& connection, uint64_t nowNs, const PacketHandler& onPacket) {
    for (int round = 0; round < kReadsPerTurn; ++round) {
        const ssize_t got = recv(connection.fd, readBuffer_.data(), readBuffer_.size(), MSG_DONTWAIT);
        if (got == 0) {
            connection.closing = CloseReason::Peer;
            return;
        }
        if (got < 0) {
            const int err = errno;
            if (err == EINTR) continue;
            if (wouldBlock(err)) return;
            connection.closing = err == ECONNRESET ? CloseReason::Peer : CloseReason::SocketError;
            if (connection.closing == CloseReason::SocketError)
                log_.warn(kLogSocket, "OSC over TCP: " + describeAddress(connection.peer) + ": receive failed: " +
                                          std::strerror(err) + "; connection closed");
            return;
        }
        connection.lastReceiveNs = nowNs;
        bool delivered = false;
        const FramingError error =
            connection.decoder.feed(readBuffer_.data(), static_cast<size_t>(got), [&](const uint8_t* packet, size_t size) {
                delivered = true;
                ++counters_.packets;
                onPacket(packet, size, connection.peer, connection.id);
            });
        if (error != FramingError::None) {
            if (error == FramingError::Oversize)
                ++counters_.oversize;
            else
                ++counters_.framingErrors;
            connection.closing = CloseReason::Framing;
            std::string text = "OSC over TCP: " + describeAddress(connection.peer) + " (" +
                               describe(connection.decoder.framing()) + "): " + describe(error);
            if (error == FramingError::Oversize) text += " of " + std::to_string(options_.maxPacketBytes) + " bytes";
            log_.warn(kLogFraming, text + "; connection closed");
            return;
        }
        // The stall clock runs from when the incomplete packet began.
        if (connection.decoder.pendingBytes() == 0)
            connection.pendingSinceNs = 0;
        else if (delivered || connection.pendingSinceNs == 0)
            connection.pendingSinceNs = nowNs;
        if (static_cast<size_t>(got) < readBuffer_.size()) return;  // drained
    }
}

void TcpListener::flush(Connection& connection) {
    while (!connection.outgoing.empty()) {
        const ssize_t sent =
            ::send(connection.fd, connection.outgoing.data(), connection.outgoing.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent > 0) {
            connection.outgoing.erase(connection.outgoing.begin(), connection.outgoing.begin() + sent);
            continue;
        }
        const int err = errno;
        if (sent < 0 && err == EINTR) continue;
        if (sent < 0 && wouldBlock(err)) return;
        connection.closing = (err == EPIPE || err == ECONNRESET) ? CloseReason::Peer : CloseReason::SocketError;
        if (connection.closing == CloseReason::SocketError)
            log_.warn(kLogSocket, "OSC over TCP: " + describeAddress(connection.peer) + ": send failed: " +
                                      std::strerror(err) + "; connection closed");
        connection.outgoing.clear();
        return;
    }
}

bool TcpListener::send(uint32_t id, const uint8_t* packet, size_t size) {
    Connection* connection = find(id);
    frameBuffer_.clear();
    if (connection == nullptr || connection->closing != CloseReason::None ||
        !appendFramed(connection->decoder.framing(), packet, size, frameBuffer_)) {
        ++counters_.repliesDropped;
        return false;
    }
    if (connection->outgoing.size() + frameBuffer_.size() > options_.maxOutgoingBytes) {
        // Never part of a reply: it would corrupt the stream.
        ++counters_.repliesDropped;
        log_.warn(kLogDropped, "OSC over TCP: " + describeAddress(connection->peer) + " does not read its replies (" +
                                   std::to_string(connection->outgoing.size()) + " bytes waiting); reply dropped");
        return false;
    }
    connection->outgoing.insert(connection->outgoing.end(), frameBuffer_.begin(), frameBuffer_.end());
    flush(*connection);
    if (connection->closing != CloseReason::None) {
        ++counters_.repliesDropped;
        return false;
    }
    ++counters_.repliesSent;
    return true;
}

void TcpListener::checkTimers(Connection& connection, uint64_t nowNs) {
    if (connection.pendingSinceNs != 0 && nowNs - connection.pendingSinceNs > options_.stalledPacketNs) {
        ++counters_.stalled;
        connection.closing = CloseReason::Stalled;
        log_.warn(kLogStalled, "OSC over TCP: " + describeAddress(connection.peer) + ": packet still incomplete after " +
                                   std::to_string(options_.stalledPacketNs / 1'000'000) + " ms (" +
                                   std::to_string(connection.decoder.pendingBytes()) + " bytes); connection closed");
    } else if (options_.idleNs != 0 && nowNs - connection.lastReceiveNs > options_.idleNs) {
        ++counters_.idle;
        connection.closing = CloseReason::Idle;
        log_.warn(kLogIdle, "OSC over TCP: " + describeAddress(connection.peer) + ": nothing received for " +
                                std::to_string(options_.idleNs / 1'000'000) + " ms; connection closed");
    }
}

bool TcpListener::evictQuietest(uint64_t nowNs) {
    // Called between closeFinished() and the next addPollFds(): erasing cannot confuse a
    // descriptor in the poll set.
    const auto quietest = std::min_element(connections_.begin(), connections_.end(),
                                           [](const Connection& a, const Connection& b) {
                                               return a.lastReceiveNs < b.lastReceiveNs;
                                           });
    if (quietest == connections_.end() || nowNs - quietest->lastReceiveNs < options_.evictQuietNs) return false;
    ++counters_.evicted;
    log_.warn(kLogEvicted, "OSC over TCP: " + describeAddress(quietest->peer) + " closed after " +
                               std::to_string((nowNs - quietest->lastReceiveNs) / 1'000'000) +
                               " ms of silence to make room for a newcomer");
    close(quietest->fd);
    connections_.erase(quietest);
    return true;
}

void TcpListener::closeFinished() {
    const auto finished = [&](const Connection& connection) {
        if (connection.closing == CloseReason::None) return false;
        if (connection.closing == CloseReason::Peer)
            ++counters_.closedByPeer;
        else if (connection.closing != CloseReason::Idle)  // counted in `idle`
            ++counters_.closedOnError;
        close(connection.fd);
        spdlog::debug("OSC over TCP: {} disconnected (connection {})", describeAddress(connection.peer), connection.id);
        return true;
    };
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(), finished), connections_.end());
}

TcpListener::Connection* TcpListener::find(uint32_t id) {
    for (Connection& connection : connections_)
        if (connection.id == id) return &connection;
    return nullptr;
}

}  // namespace sustain
