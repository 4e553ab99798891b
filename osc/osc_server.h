// The OSC thread: owns the UDP socket, parses and validates, and routes commands.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <bitset>
#include <cstdint>
#include <string>
#include <thread>

#include <lo/lo.h>
#include <poll.h>

#include <memory>
#include <optional>
#include <vector>

#include "osc/allow_list.h"
#include "osc/command_router.h"
#include "osc/feedback.h"
#include "osc/mapping.h"
#include "osc/param_address.h"
#include "osc/rate_limited_log.h"
#include "osc/socket_address.h"
#include "osc/tcp_listener.h"
#include "shm/layout.h"

namespace sustain {

struct OscServerOptions {
    std::string bindAddress = "127.0.0.1";  // liblo 0.31 binds only to the wildcard: we own the socket
    uint16_t port = 8000;
    uint32_t voices = 4;
    uint32_t sampleRate = 48000;
    int receiveBufferBytes = 4 << 20;       // deliberate: a burst of ~40,000 small messages fits
    AllowList allow;                        // empty: whoever can reach --bind
    uint16_t tcpPort = 0;                   // OSC over TCP beside UDP (docs/tcp.md); 0: off
    std::shared_ptr<const Mapping> mapping; // --config: control-surface addresses (docs/mapping.md); may be null
    uint64_t leaseNs = Feedback::kDefaultLeaseNs;   // --lease: a silent client is forgotten after it (docs/clients.md)
};

/// Receives OSC over UDP on one thread. Datagrams are read in batches with recvmmsg();
/// the kernel's own drops are counted through SO_RXQ_OVFL, so none is silent.
class OscServer {
public:
    OscServer(Segment& segment, CommandRouter& router, OscServerOptions options);
    ~OscServer();
    OscServer(const OscServer&) = delete;
    OscServer& operator=(const OscServer&) = delete;

    /// Creates and binds the socket. Thread: main, before start().  Errors: `error` says
    /// what failed, with the fix when there is one (port in use, bad address).
    bool open(std::string& error);

    /// After open() failed: whether because another program holds a port (UDP or TCP), a
    /// condition that may pass, rather than a wrong address.
    bool portInUse() const { return portInUse_; }

    /// Starts / stops the OSC thread. Thread: main.
    void start();
    void stop();

    uint16_t boundPort() const { return boundPort_; }
    uint16_t tcpPort() const { return tcp_ ? tcp_->boundPort() : 0; }

    /// Replaces the control-surface mapping as a whole (SIGHUP reload); the OSC thread
    /// takes it before its next packet, and sends mapped clients a snapshot in the new
    /// address space. Thread: any.
    void setMapping(std::shared_ptr<const Mapping> mapping) { nextMapping_.store(std::move(mapping)); }

private:
    void run();
    void receiveBatch(uint64_t receiveNs);
    void refreshKernelDrops();
    void readSendErrors();
    bool trusted(const sockaddr_storage& from) const;
    void handleDatagram(const uint8_t* data, size_t size, bool truncated, uint64_t receiveNs,
                        const sockaddr_storage& from);
    void handleMessage(const uint8_t* data, size_t size, uint64_t timetag, uint64_t receiveNs,
                       const sockaddr_storage& from);
    void handleChange(std::string_view address, lo_message message, uint64_t timetag, uint64_t receiveNs,
                      const sockaddr_storage& from);
    void handlePattern(std::string_view pattern, lo_message message, uint64_t timetag, uint64_t receiveNs,
                       const sockaddr_storage& from);
    static constexpr const char* kPatternCharacters = "*?[]{}";
    static constexpr size_t kMaxPatternBytes = 128;
    static constexpr size_t kMaxPatternStars = 4;
    void reject(RejectReason reason, const std::string& text, const sockaddr_storage& from, std::string_view address = {});
    void sendFailReply(RejectReason reason, const std::string& text, const sockaddr_storage& from,
                       std::string_view address);
    bool handleEngineRequest(std::string_view path, lo_message message, const sockaddr_storage& from);
    /// /engine/panic, or a surface's panic button: master gain 0 now, timed changes dropped.
    void panic(const sockaddr_storage& from);
    void sendTo(const sockaddr_storage& to, const char* path, lo_message message);
    bool sendPacket(const sockaddr_storage& to, uint32_t tcpConnection, const uint8_t* data, size_t size);
    void handleTcpPacket(const uint8_t* data, size_t size, const sockaddr_storage& peer, uint32_t connection);
    void publishTcpCounters();
    uint32_t tcpConnectionOf(const sockaddr_storage& from) const;
    void submitChange(uint32_t param, double value, uint64_t timetag, uint64_t receiveNs, std::string_view address,
                      const sockaddr_storage& from);
    bool handleMapped(std::string_view address, lo_message message, uint64_t timetag, uint64_t receiveNs,
                      const sockaddr_storage& from);
    void countLate(double lateMs);
    void requestSync(lo_message message, const sockaddr_storage& from);
    std::optional<uint16_t> replyPortArgument(lo_message message, int index, const sockaddr_storage& from);
    void answerSyncs(uint64_t nowNs);
    uint64_t pollTimeoutNs(bool owed) const;

    Segment& segment_;
    CommandRouter& router_;
    OscServerOptions options_;
    int socket_ = -1;
    int stopEvent_ = -1;
    uint16_t boundPort_ = 0;
    bool portInUse_ = false;
    std::thread thread_;
    std::unique_ptr<uint8_t[]> buffers_;  // one receive buffer per datagram of a batch, allocated once
    // Keyed by reason and address, so a flood of one bad message cannot hide another.
    RateLimitedLog<128> rejectLog_;

    std::shared_ptr<const Mapping> mapping_;                    // OSC thread only
    std::atomic<std::shared_ptr<const Mapping>> nextMapping_;   // set by setMapping()
    Feedback feedback_;                                         // OSC thread only

    /// /engine/sync requests waiting until the audio has applied every change accepted
    /// before them: the state table's versions then, against the active worker's
    /// appliedSequence. Bounded; refused beyond, and answered with a timeout after a while.
    struct PendingSync {
        sockaddr_storage from;
        lo_message reply;              // /engine/synced with the client's own id argument
        uint64_t deadlineNs;
        uint64_t versions[kParamCount];
    };
    static constexpr size_t kMaxPendingSyncs = 64;
    static constexpr uint64_t kSyncTimeoutNs = 5'000'000'000ull;
    std::vector<PendingSync> syncs_;

    std::vector<uint8_t> replyBuffer_;

    // /engine/dumpOSC: every message received written to the log, at most kTraceLinesPerSecond.
    void trace(const sockaddr_storage& from, std::string_view path, lo_message message);
    bool traceLineAllowed();  // every dumpOSC line, refusals included, counts against one budget
    static constexpr uint32_t kTraceLinesPerSecond = 100;
    bool tracing_ = false;
    uint64_t traceSecond_ = 0;      // the second the budget below is for
    uint32_t traceLines_ = 0;       // lines written in it
    uint64_t traceSuppressed_ = 0;  // lines over the budget since the last one written

    std::unique_ptr<TcpListener> tcp_;
    TcpListener::PacketHandler onTcpPacket_;
    std::vector<pollfd> pollFds_;
    // While a TCP packet is handled: its connection, so that replies to its sender go back
    // over it rather than as UDP datagrams to the peer's address. 0 for UDP.
    uint32_t currentTcpConnection_ = 0;
    sockaddr_storage currentTcpPeer_{};
};

}  // namespace sustain
