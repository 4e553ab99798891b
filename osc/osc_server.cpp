#include "osc/osc_server.h"

#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <lo/lo.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>

#include "osc/message_validator.h"
#include "osc/osc_arguments.h"
#include "osc/osc_packet.h"
#include "shm/clock.h"
#include "shm/frame_clock.h"
#include "shm/metrics.h"
#include "shm/seqlock.h"

namespace sustain {

namespace {
constexpr size_t kMaxDatagram = 65536;  // the UDP maximum; larger is truncated by the kernel
// Datagrams per recvmmsg(): the workers are woken at most once per batch, so a larger batch
// means fewer wakes under a flood.
constexpr unsigned kBatch = 128;
// The OSC thread's nice value (see run()).
constexpr int kOscThreadNice = -10;
constexpr uint64_t kIdlePollNs = 100'000'000;
constexpr uint64_t kFlushPollNs = 1'000'000;  // while refreshes are owed to a full ring
// While an /engine/sync waits: the answer goes out this soon after the callback applied
// the changes before it (a sixth of a 64-frame period at 48 kHz), so that the round trip
// is set by the audio cycle, not by how often the OSC thread looks.
constexpr uint64_t kSyncPollNs = 200'000;
}  // namespace

OscServer::OscServer(Segment& segment, CommandRouter& router, OscServerOptions options)
    : segment_(segment),
      router_(router),
      options_(std::move(options)),
      mapping_(options_.mapping),
      feedback_(segment, options_.voices, options_.mapping,
                [this](const sockaddr_storage& to, uint32_t tcpConnection, const uint8_t* data, size_t size) {
                    return sendPacket(to, tcpConnection, data, size);
                },
                options_.leaseNs) {}

OscServer::~OscServer() {
    stop();
    for (PendingSync& sync : syncs_) lo_message_free(sync.reply);
    if (socket_ >= 0) close(socket_);
    if (stopEvent_ >= 0) close(stopEvent_);
}

bool OscServer::open(std::string& error) {
    sockaddr_storage address{};
    socklen_t length = 0;
    auto* in = reinterpret_cast<sockaddr_in*>(&address);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    if (inet_pton(AF_INET, options_.bindAddress.c_str(), &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(options_.port);
        length = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, options_.bindAddress.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(options_.port);
        length = sizeof(sockaddr_in6);
    } else {
        error = "--bind \"" + options_.bindAddress + "\": not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)";
        return false;
    }
    socket_ = socket(address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (socket_ < 0) {
        error = std::string("cannot create a UDP socket: ") + std::strerror(errno);
        return false;
    }
    // Size the kernel's receive queue on purpose; SO_RCVBUFFORCE passes rmem_max when privileged.
    const int wanted = options_.receiveBufferBytes;
    if (setsockopt(socket_, SOL_SOCKET, SO_RCVBUFFORCE, &wanted, sizeof wanted) != 0)
        setsockopt(socket_, SOL_SOCKET, SO_RCVBUF, &wanted, sizeof wanted);
    int granted = 0;
    socklen_t grantedLength = sizeof granted;
    getsockopt(socket_, SOL_SOCKET, SO_RCVBUF, &granted, &grantedLength);
    segment_.osc.receiveBufferBytes.store(static_cast<uint64_t>(granted), std::memory_order_relaxed);
    if (granted < wanted)
        spdlog::warn("OSC receive buffer is {} bytes, asked for {} (raise net.core.rmem_max to absorb bursts)",
                     granted, wanted);
    const int one = 1;
    if (setsockopt(socket_, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) != 0)
        spdlog::warn("SO_RXQ_OVFL unavailable: datagrams the kernel drops cannot be counted");
    // ICMP errors for what we send (a client's port closed, its host gone) are queued for
    // readSendErrors(); without this a UDP socket that is not connected never hears of them.
    // An IPv6 socket also carries IPv4-mapped clients, whose errors come as IPv4 ones.
    const bool recvErr = address.ss_family == AF_INET6
                             ? setsockopt(socket_, SOL_IPV6, IPV6_RECVERR, &one, sizeof one) == 0 &&
                                   setsockopt(socket_, SOL_IP, IP_RECVERR, &one, sizeof one) == 0
                             : setsockopt(socket_, SOL_IP, IP_RECVERR, &one, sizeof one) == 0;
    if (!recvErr)
        spdlog::warn("IP_RECVERR unavailable: clients that vanish are forgotten only when their lease ends");
    if (bind(socket_, reinterpret_cast<sockaddr*>(&address), length) != 0) {
        const int err = errno;
        error = "cannot listen for OSC on udp " + options_.bindAddress + ":" + std::to_string(options_.port) + ": " +
                std::strerror(err);
        if (err == EADDRINUSE) error += " (another program uses this port; choose one with --port)";
        portInUse_ = err == EADDRINUSE;
        if (err == EADDRNOTAVAIL) error += " (no interface has this address; check --bind)";
        return false;
    }
    sockaddr_storage bound{};
    socklen_t boundLength = sizeof bound;
    getsockname(socket_, reinterpret_cast<sockaddr*>(&bound), &boundLength);
    boundPort_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in&>(bound).sin_port
                                                  : reinterpret_cast<sockaddr_in6&>(bound).sin6_port);
    stopEvent_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stopEvent_ < 0) {
        error = std::string("cannot create the OSC thread's wake-up event: ") + std::strerror(errno);
        return false;
    }
    // Not zeroed: pages the kernel never writes to (a small datagram's slot beyond its
    // first page) stay unmapped and cost no memory.
    buffers_ = std::make_unique_for_overwrite<uint8_t[]>(kBatch * kMaxDatagram);
    syncs_.reserve(kMaxPendingSyncs);
    if (options_.tcpPort != 0) {
        TcpListenerOptions tcpOptions;
        tcpOptions.allow = options_.allow;
        tcpOptions.idleNs = options_.leaseNs;
        tcp_ = std::make_unique<TcpListener>(tcpOptions);
        if (!tcp_->open(options_.bindAddress, options_.tcpPort, error)) {
            portInUse_ = errno == EADDRINUSE;  // TcpListener::open leaves the cause in errno
            return false;
        }
        onTcpPacket_ = [this](const uint8_t* data, size_t size, const sockaddr_storage& peer, uint32_t connection) {
            handleTcpPacket(data, size, peer, connection);
        };
    }
    return true;
}

void OscServer::start() { thread_ = std::thread([this] { run(); }); }

void OscServer::stop() {
    if (!thread_.joinable()) return;
    const uint64_t one = 1;
    if (write(stopEvent_, &one, sizeof one) < 0) { /* cannot fail for an eventfd below its limit */ }
    thread_.join();
}

void OscServer::run() {
    pthread_setname_np(pthread_self(), "sustain-osc");
    // Ahead of ordinary processes (the senders on this machine among them), behind every
    // real-time thread: a nice value, not a real-time policy, so that a flood from the
    // network can slow the rest of the machine but never take a core away from it.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kOscThreadNice) != 0)
        spdlog::info("the OSC thread runs at the default priority (nice {} refused: {}); under a flood it "
                     "competes with the senders for the CPU", kOscThreadNice, std::strerror(errno));
    bool owed = false;
    for (;;) {
        pollFds_.clear();
        pollFds_.push_back({socket_, POLLIN, 0});
        pollFds_.push_back({stopEvent_, POLLIN, 0});
        if (tcp_) tcp_->addPollFds(pollFds_);
        const uint64_t timeoutNs = pollTimeoutNs(owed);
        const timespec timeout{static_cast<time_t>(timeoutNs / 1'000'000'000ull), static_cast<long>(timeoutNs % 1'000'000'000ull)};
        const int ready = ppoll(pollFds_.data(), pollFds_.size(), &timeout, nullptr);
        if (ready < 0 && errno != EINTR) {
            spdlog::error("OSC thread: poll failed: {}", std::strerror(errno));
            return;
        }
        if (pollFds_[1].revents & POLLIN) return;
        if (std::shared_ptr<const Mapping> next = nextMapping_.exchange(nullptr)) {
            mapping_ = next;
            feedback_.setMapping(std::move(next));
        }
        if (pollFds_[0].revents & POLLERR) readSendErrors();
        const bool received = (pollFds_[0].revents & POLLIN) != 0;
        if (received) receiveBatch(monotonicNs());
        if (tcp_) {
            tcp_->handle(pollFds_.data() + 2, pollFds_.size() - 2, onTcpPacket_);
            publishTcpCounters();
        }
        if (ready == 0) refreshKernelDrops();
        const uint64_t nowNs = monotonicNs();
        // A timed change reaches feedback when it is rendered, for every client alike.
        router_.serviceTimed(nowNs, [this](uint32_t param, double) { feedback_.changed(param, nullptr); });
        segment_.osc.timedPending.store(router_.timedWaiting(), std::memory_order_relaxed);
        if (!syncs_.empty()) answerSyncs(nowNs);
        feedback_.flush(nowNs);
        if (owed || received || ready > 0) owed = router_.flushPending();
        // Once per pass, after everything this pass took in was pushed.
        router_.wakeSleepers();
    }
}

void OscServer::handleTcpPacket(const uint8_t* data, size_t size, const sockaddr_storage& peer, uint32_t connection) {
    currentTcpConnection_ = connection;
    currentTcpPeer_ = peer;
    handleDatagram(data, size, false, monotonicNs(), peer);
    currentTcpConnection_ = 0;
}

uint32_t OscServer::tcpConnectionOf(const sockaddr_storage& from) const {
    // Replies to the TCP client whose packet is being handled go back over its connection.
    return currentTcpConnection_ != 0 && sameEndpoint(from, currentTcpPeer_) ? currentTcpConnection_ : 0;
}

void OscServer::publishTcpCounters() {
    const TcpCounters& c = tcp_->counters();
    OscMetrics& m = segment_.osc;
    m.tcpConnections.store(tcp_->connectionCount(), std::memory_order_relaxed);
    m.tcpAccepted.store(c.accepted, std::memory_order_relaxed);
    m.tcpRefused.store(c.refusedLimit + c.refusedSender, std::memory_order_relaxed);
    m.tcpClosedOnError.store(c.closedOnError, std::memory_order_relaxed);  // stalls included
    m.tcpIdleClosed.store(c.idle, std::memory_order_relaxed);
    m.tcpEvicted.store(c.evicted, std::memory_order_relaxed);
    m.tcpFramingErrors.store(c.framingErrors + c.oversize, std::memory_order_relaxed);
    m.tcpRepliesDropped.store(c.repliesDropped, std::memory_order_relaxed);
}

namespace {
// The errors an ICMP message for an earlier datagram leaves on the socket (IP_RECVERR).
bool isPendingIcmpError(int err) {
    return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN;
}
}  // namespace

bool OscServer::sendPacket(const sockaddr_storage& to, uint32_t tcpConnection, const uint8_t* data, size_t size) {
    if (tcpConnection != 0) return tcp_ && tcp_->send(tcpConnection, data, size);
    const socklen_t length = to.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    // The first send after an ICMP error fails with that error (and clears it), whoever it
    // is for: the error belongs to an earlier datagram (readSendErrors() says whose), so
    // this one is sent again.
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (sendto(socket_, data, size, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to), length) >= 0) return true;
        if (!isPendingIcmpError(errno)) return false;
    }
    return false;
}

bool OscServer::trusted(const sockaddr_storage& from) const {
    // Who may hear feedback without proving it receives (docs/clients.md): a TCP peer (the
    // handshake proved its address), a loopback address (only this machine sends from it),
    // or any sender when --allow names who may send at all.
    return tcpConnectionOf(from) != 0 || isLoopback(from) || !options_.allow.empty();
}

void OscServer::readSendErrors() {
    // Bounded: the queue holds at most SO_RCVBUF's worth; the rest waits for the next pass.
    for (int i = 0; i < 256; ++i) {
        sockaddr_storage to{};
        uint8_t payload[64];
        alignas(cmsghdr) char control[512];
        iovec vector{payload, sizeof payload};
        msghdr header{};
        header.msg_name = &to;
        header.msg_namelen = sizeof to;
        header.msg_iov = &vector;
        header.msg_iovlen = 1;
        header.msg_control = control;
        header.msg_controllen = sizeof control;
        if (recvmsg(socket_, &header, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
        for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr; c = CMSG_NXTHDR(&header, c)) {
            const bool ipError = (c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                                 (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR);
            if (!ipError) continue;
            sock_extended_err error{};
            std::memcpy(&error, CMSG_DATA(c), sizeof error);
            segment_.osc.icmpErrors.fetch_add(1, std::memory_order_relaxed);
            // msg_name is where the datagram that failed was going.
            if (isPendingIcmpError(static_cast<int>(error.ee_errno))) feedback_.unreachable(to);
        }
    }
}

uint64_t OscServer::pollTimeoutNs(bool owed) const {
    if (!syncs_.empty()) return kSyncPollNs;
    if (owed) return kFlushPollNs;
    if (feedback_.owed()) return Feedback::kFeedbackIntervalNs;
    const uint64_t next = router_.nextTimedNs();
    if (next == UINT64_MAX) return kIdlePollNs;
    const uint64_t now = monotonicNs();
    if (next <= now) return 0;
    return std::min<uint64_t>(next - now, kIdlePollNs);
}

void OscServer::countLate(double lateMs) {
    OscMetrics& m = segment_.osc;
    m.timedLate.fetch_add(1, std::memory_order_relaxed);
    size_t bin = 0;
    double edge = 1.0;
    while (bin + 1 < kLateBins && lateMs >= edge) {
        ++bin;
        edge *= 2.0;
    }
    m.lateBins[bin].fetch_add(1, std::memory_order_relaxed);
    feedback_.noteLate(lateMs);
}

void OscServer::submitChange(uint32_t param, double value, uint64_t timetag, uint64_t receiveNs,
                             std::string_view address, const sockaddr_storage& from) {
    // Below kTinyValue a value is silence: exactly 0, so no denormal reaches the audio path.
    if (value != 0.0 && std::fabs(value) < kTinyValue) {
        value = 0.0;
        segment_.osc.tinyFlushed.fetch_add(1, std::memory_order_relaxed);
    }
    if (isImmediateTimetag(timetag)) {
        router_.submit(param, value, receiveNs);
        return;
    }
    const uint32_t latencyFrames = segment_.clock.playLatencyFrames.load(std::memory_order_acquire);
    const auto nowNs = static_cast<int64_t>(monotonicNs());
    // The sender's wall clock, as CLOCK_MONOTONIC: both clocks are this machine's, so the
    // offset between them is exact to the microsecond (a client on another machine must
    // keep its clock in step, e.g. with NTP, as for any OSC server).
    const auto wallNs = static_cast<int64_t>(realtimeNs());
    const int64_t heardNs = ntpToUnixNs(timetag, wallNs) - (wallNs - nowNs);
    FrameAnchor anchor{};
    if (!readFrameClock(segment_, anchor)) {
        // No worker renders yet: there is no frame to aim at. Applied at once, as late.
        countLate(0.0);
        router_.submit(param, value, receiveNs);
        return;
    }
    const int64_t dueFrame = frameHeardAt(anchor, heardNs, latencyFrames);
    const int64_t nowFrame = frameRenderedAt(anchor, nowNs);
    if (dueFrame < nowFrame) {
        countLate(static_cast<double>(nowFrame - dueFrame) * anchor.nsPerFrame / 1e6);
        router_.submit(param, value, receiveNs);
        return;
    }
    OscMetrics& m = segment_.osc;
    const std::string shown = printable(address, 64);
    switch (router_.submitTimed(param, value, receiveNs, heardNs, endpointKey(from))) {
        case TimedAdmission::Scheduled:
            m.timedScheduled.fetch_add(1, std::memory_order_relaxed);
            return;
        case TimedAdmission::TooFarAhead:
            m.rejectedTooFarAhead.fetch_add(1, std::memory_order_relaxed);
            rejectLog_.warn(123, shown + " from " + describeAddress(from) + ": timetag " +
                                     std::to_string((heardNs - nowNs) / 1'000'000'000) +
                                     " s ahead, beyond the schedule's horizon (a wrong clock?); refused");
            break;
        case TimedAdmission::SenderQuota:
            m.rejectedSenderQuota.fetch_add(1, std::memory_order_relaxed);
            rejectLog_.warn(124, shown + " from " + describeAddress(from) + ": this sender already has " +
                                     std::to_string(kMaxTimedEvents / kTimedSenderShares) +
                                     " timed messages waiting, its share; refused");
            break;
        case TimedAdmission::ScheduleFull:
            m.rejectedScheduleFull.fetch_add(1, std::memory_order_relaxed);
            rejectLog_.warn(126, shown + ": " + std::to_string(kMaxTimedEvents) +
                                     " timed messages already wait for their time; refused");
            break;
    }
    m.rejected.fetch_add(1, std::memory_order_relaxed);
}

void OscServer::refreshKernelDrops() {
    // SO_RXQ_OVFL reports the drop count only with a datagram that does arrive: datagrams
    // dropped after the last one of a flood would stay invisible. The socket's memory info
    // carries the same counter; read it whenever the socket falls quiet.
    uint32_t info[SK_MEMINFO_VARS] = {};
    socklen_t length = sizeof info;
    if (getsockopt(socket_, SOL_SOCKET, SO_MEMINFO, info, &length) == 0 && length > SK_MEMINFO_DROPS * sizeof(uint32_t))
        segment_.osc.kernelDrops.store(info[SK_MEMINFO_DROPS], std::memory_order_relaxed);
}

void OscServer::receiveBatch(uint64_t receiveNs) {
    mmsghdr messages[kBatch];
    iovec vectors[kBatch];
    sockaddr_storage senders[kBatch] = {};
    alignas(cmsghdr) char control[kBatch][CMSG_SPACE(sizeof(uint32_t))];
    for (unsigned i = 0; i < kBatch; ++i) {
        vectors[i] = {buffers_.get() + i * kMaxDatagram, kMaxDatagram};
        messages[i] = {};
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &senders[i];
        messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        messages[i].msg_hdr.msg_control = control[i];
        messages[i].msg_hdr.msg_controllen = sizeof control[i];
    }
    int count = recvmmsg(socket_, messages, kBatch, MSG_DONTWAIT, nullptr);
    // A pending ICMP error (IP_RECVERR) fails the first receive after it, as it does a send.
    if (count < 0 && isPendingIcmpError(errno)) count = recvmmsg(socket_, messages, kBatch, MSG_DONTWAIT, nullptr);
    if (count <= 0) return;
    segment_.osc.receiveBatches.fetch_add(1, std::memory_order_relaxed);
    for (int i = 0; i < count; ++i) {
        const msghdr& header = messages[i].msg_hdr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&header), c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                uint32_t drops = 0;
                std::memcpy(&drops, CMSG_DATA(c), sizeof drops);
                // The kernel reports the socket's running total.
                segment_.osc.kernelDrops.store(drops, std::memory_order_relaxed);
            }
        }
        const bool truncated = (header.msg_flags & MSG_TRUNC) != 0;
        handleDatagram(static_cast<const uint8_t*>(vectors[i].iov_base), messages[i].msg_len, truncated, receiveNs,
                       senders[i]);
    }
}

void OscServer::sendTo(const sockaddr_storage& to, const char* path, lo_message message) {
    size_t size = lo_message_length(message, path);
    if (size > replyBuffer_.size()) replyBuffer_.resize(size);
    if (lo_message_serialise(message, path, replyBuffer_.data(), &size) == nullptr) return;
    // Over TCP, back on the connection; over UDP, to the host's reply port if it named one.
    const uint32_t connection = tcpConnectionOf(to);
    if (sendPacket(connection != 0 ? to : feedback_.replyAddress(to), connection, replyBuffer_.data(), size))
        segment_.osc.repliesSent.fetch_add(1, std::memory_order_relaxed);
}

bool OscServer::handleMapped(std::string_view address, lo_message message, uint64_t timetag, uint64_t receiveNs,
                             const sockaddr_storage& from) {
    const MapEntry* entry = mapping_ ? mapping_->find(address) : nullptr;
    std::optional<MapTarget> alias;
    if (entry == nullptr) {
        alias = normalisedAlias(address, options_.voices, options_.sampleRate);
        if (!alias && mapping_ && !address.starts_with("/engine") && mapping_->ignores(address)) {
            // Chatter the mapping says means nothing here (touch, accelerometer, page changes).
            segment_.osc.surfaceIgnored.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
        if (!alias) return false;
    }
    const bool pressOnly = entry != nullptr && entry->press != PressAction::None;
    const size_t wanted = entry != nullptr && !pressOnly ? entry->targets.size() : 1;
    const int argc = lo_message_get_argc(message);
    const char* types = lo_message_get_types(message);
    lo_arg** argv = lo_message_get_argv(message);
    const std::string shown = printable(address, 64);
    if (static_cast<size_t>(argc) != wanted) {
        reject(RejectReason::ArgCount, shown + ": expected " + std::to_string(wanted) + " argument(s), got " +
                                           std::to_string(argc) + "; message ignored", from, address);
        return true;
    }
    double positions[kMaxTargetsPerEntry] = {};
    for (size_t i = 0; i < wanted; ++i) {
        const std::optional<double> position = controlArgument(types[i], argv[i]);
        if (!position) {
            reject(RejectReason::BadType, shown + ": expected numbers; message ignored", from, address);
            return true;
        }
        positions[i] = *position;
        if (!std::isfinite(positions[i])) {
            reject(RejectReason::NotFinite, shown + ": expected a finite number; message ignored", from, address);
            return true;
        }
    }
    segment_.osc.accepted.fetch_add(1, std::memory_order_relaxed);
    if (entry != nullptr) feedback_.registerSurface(from, tcpConnectionOf(from), entry->feedbackPort, trusted(from), receiveNs);
    if (pressOnly) {
        // A press is any value above the bottom (TouchOSC's push buttons send 1, then 0 on release).
        if (!(positions[0] > 0.0)) {
            segment_.osc.surfaceIgnored.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
        if (entry->press == PressAction::Panic) {
            panic(from);
            return true;
        }
        const uint32_t param = entry->targets.front().param;
        submitChange(param, entry->pressValue, timetag, receiveNs, address, from);
        if (isImmediateTimetag(timetag)) feedback_.changed(param, &from);
        return true;
    }
    if (alias)
        feedback_.usedAddress(from, alias->param, address.starts_with("/engine/voice/"), true, tcpConnectionOf(from),
                              trusted(from), receiveNs);
    for (size_t i = 0; i < wanted; ++i) {
        const MapTarget& target = entry != nullptr ? entry->targets[i] : *alias;
        submitChange(target.param, curveToValue(target, positions[i]), timetag, receiveNs, address, from);
        if (isImmediateTimetag(timetag)) feedback_.changed(target.param, &from);
    }
    return true;
}

void OscServer::reject(RejectReason reason, const std::string& text, const sockaddr_storage& from,
                       std::string_view address) {
    OscMetrics& m = segment_.osc;
    m.rejected.fetch_add(1, std::memory_order_relaxed);
    switch (reason) {
        case RejectReason::Malformed: m.rejectedMalformed.fetch_add(1, std::memory_order_relaxed); break;
        case RejectReason::UnknownAddress: m.rejectedUnknownAddress.fetch_add(1, std::memory_order_relaxed); break;
        case RejectReason::BadType: m.rejectedBadType.fetch_add(1, std::memory_order_relaxed); break;
        case RejectReason::ArgCount: m.rejectedArgCount.fetch_add(1, std::memory_order_relaxed); break;
        case RejectReason::NotFinite: m.rejectedNotFinite.fetch_add(1, std::memory_order_relaxed); break;
        case RejectReason::OutOfRange: m.rejectedOutOfRange.fetch_add(1, std::memory_order_relaxed); break;
        case RejectReason::Oversize: m.rejectedOversize.fetch_add(1, std::memory_order_relaxed); break;
        case RejectReason::None: break;
    }
    const size_t key = static_cast<size_t>(reason) * 16 + (std::hash<std::string_view>{}(address) & 15);
    rejectLog_.warn(key, text + " (from " + describeAddress(from) + ")");
    if (tracing_ && traceLineAllowed()) spdlog::info("dumpOSC: refused: {}", text);
    if (feedback_.settings().wantsFailReplies(from)) sendFailReply(reason, text, from, address);
}

void OscServer::sendFailReply(RejectReason reason, const std::string& text, const sockaddr_storage& from,
                              std::string_view address) {
    // /engine/fail <address> <reason> <text>, as scsynth's /fail names the command and the error.
    lo_message reply = lo_message_new();
    lo_message_add_string(reply, std::string(address.substr(0, 256)).c_str());
    lo_message_add_string(reply, reasonName(reason));
    lo_message_add_string(reply, text.c_str());
    sendTo(from, "/engine/fail", reply);
    lo_message_free(reply);
    segment_.osc.failRepliesSent.fetch_add(1, std::memory_order_relaxed);
}

bool OscServer::traceLineAllowed() {
    const uint64_t second = monotonicNs() / 1'000'000'000ull;
    if (second != traceSecond_) {
        traceSecond_ = second;
        traceLines_ = 0;
    }
    if (++traceLines_ > kTraceLinesPerSecond) {
        ++traceSuppressed_;
        return false;
    }
    return true;
}

void OscServer::trace(const sockaddr_storage& from, std::string_view path, lo_message message) {
    if (!traceLineAllowed()) return;
    std::string line = "dumpOSC: " + describeAddress(from) + " " + printable(path, 128);
    const char* types = lo_message_get_types(message);
    lo_arg** argv = lo_message_get_argv(message);
    const int argc = lo_message_get_argc(message);
    for (int i = 0; i < argc && i < 8 && types != nullptr; ++i) line += " " + describeArgument(types[i], argv[i]);
    if (argc > 8) line += " ...";
    if (traceSuppressed_ > 0) line += " (" + std::to_string(traceSuppressed_) + " earlier messages not shown)";
    traceSuppressed_ = 0;
    spdlog::info("{}", line);
    segment_.osc.traced.fetch_add(1, std::memory_order_relaxed);
}

void OscServer::handleDatagram(const uint8_t* data, size_t size, bool truncated, uint64_t receiveNs,
                               const sockaddr_storage& from) {
    segment_.osc.datagrams.fetch_add(1, std::memory_order_relaxed);
    if (!options_.allow.allows(from)) {
        segment_.osc.rejectedSender.fetch_add(1, std::memory_order_relaxed);
        rejectLog_.warn(127, "OSC datagram from " + describeAddress(from) + ", which --allow does not admit; ignored");
        return;
    }
    feedback_.heard(from, receiveNs);
    if (truncated) {
        segment_.osc.received.fetch_add(1, std::memory_order_relaxed);
        reject(RejectReason::Oversize, "OSC datagram larger than " + std::to_string(kMaxDatagram) + " bytes; ignored",
               from);
        return;
    }
    const PacketError error = forEachMessage(data, size, [&](const uint8_t* message, size_t length, uint64_t timetag) {
        handleMessage(message, length, timetag, receiveNs, from);
    });
    if (error != PacketError::None) {
        segment_.osc.received.fetch_add(1, std::memory_order_relaxed);
        reject(RejectReason::Malformed,
               std::string("OSC packet of ") + std::to_string(size) + " bytes: " + describe(error) +
                   "; rest of the packet ignored",
               from);
    }
}

void OscServer::handleMessage(const uint8_t* data, size_t size, uint64_t timetag, uint64_t receiveNs,
                              const sockaddr_storage& from) {
    segment_.osc.received.fetch_add(1, std::memory_order_relaxed);
    // liblo's parser takes a mutable pointer but does not write through it.
    void* bytes = const_cast<uint8_t*>(data);
    int result = 0;
    lo_message message = lo_message_deserialise(bytes, size, &result);
    if (message == nullptr) {
        reject(RejectReason::Malformed, "malformed OSC message of " + std::to_string(size) + " bytes (liblo error " +
                                            std::to_string(result) + "); ignored",
               from);
        return;
    }
    const char* path = lo_get_path(bytes, static_cast<ssize_t>(size));
    const std::string_view address = path != nullptr ? std::string_view(path) : std::string_view();
    if (tracing_) trace(from, address, message);
    if (handleEngineRequest(address, message, from)) {
        lo_message_free(message);
        return;
    }
    if (address.find_first_of(kPatternCharacters) != std::string_view::npos)
        handlePattern(address, message, timetag, receiveNs, from);
    else
        handleChange(address, message, timetag, receiveNs, from);
    lo_message_free(message);
}

void OscServer::handlePattern(std::string_view pattern, lo_message message, uint64_t timetag, uint64_t receiveNs,
                              const sockaddr_storage& from) {
    // OSC 1.0 address patterns on the engine's own addresses (surfaces send literal ones).
    // Bounded: the candidates are the engine's addresses (at most 4 per parameter), and a
    // pattern is short with few stars, so that liblo's backtracking matcher stays cheap.
    OscMetrics& m = segment_.osc;
    m.patternMessages.fetch_add(1, std::memory_order_relaxed);
    const std::string shown = printable(pattern, 64);
    const auto stars = static_cast<size_t>(std::count(pattern.begin(), pattern.end(), '*'));
    if (!pattern.starts_with("/engine/") || pattern.size() > kMaxPatternBytes || stars > kMaxPatternStars) {
        reject(RejectReason::UnknownAddress,
               shown + ": patterns are taken on /engine/ addresses, at most " + std::to_string(kMaxPatternBytes) +
                   " bytes and " + std::to_string(kMaxPatternStars) + " '*'; message ignored",
               from, pattern);
        return;
    }
    const std::string text(pattern);
    std::bitset<size_t{2} * kParamCount> done;  // (parameter, normalised): /engine/freq and /engine/voice/0/freq are one
    uint64_t matched = 0;
    for (uint32_t param = 0; param < kParamCount; ++param) {
        if (param != kParamMasterGain && voiceOfParam(param) >= options_.voices) continue;
        for (const std::string& form : {paramAddress(param), longParamAddress(param)}) {
            for (const bool normalised : {false, true}) {
                const std::string candidate = normalised ? form + "/norm" : form;
                if (done.test(2 * param + (normalised ? 1 : 0)) || lo_pattern_match(candidate.c_str(), text.c_str()) == 0)
                    continue;
                done.set(2 * param + (normalised ? 1 : 0));
                ++matched;
                handleChange(candidate, message, timetag, receiveNs, from);
            }
        }
    }
    m.patternTargets.fetch_add(matched, std::memory_order_relaxed);
    if (matched == 0) reject(RejectReason::UnknownAddress, shown + ": the pattern matches no address; message ignored", from, pattern);
}

void OscServer::handleChange(std::string_view address, lo_message message, uint64_t timetag, uint64_t receiveNs,
                             const sockaddr_storage& from) {
    if (handleMapped(address, message, timetag, receiveNs, from)) return;
    const ValidatedChange change = validateMessage(address, message, options_.voices, options_.sampleRate);
    if (change.error != RejectReason::None) {
        reject(change.error, printable(address, 64) + ": " + change.why + "; message ignored", from, address);
        return;
    }
    segment_.osc.accepted.fetch_add(1, std::memory_order_relaxed);
    feedback_.usedAddress(from, change.param, address.starts_with("/engine/voice/"), false, tcpConnectionOf(from),
                          trusted(from), receiveNs);
    submitChange(change.param, change.value, timetag, receiveNs, address, from);
    // Feedback carries the change when it is made (a timed one: when it is rendered).
    if (isImmediateTimetag(timetag)) feedback_.changed(change.param, &from);
}

}  // namespace sustain
