// Who hears what the engine does: parameter changes and events, to subscribed clients and
// to control surfaces (docs/feedback.md).
#pragma once

#include <sys/socket.h>

#include <bitset>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <lo/lo.h>

#include "osc/mapping.h"
#include "osc/rate_limited_log.h"
#include "osc/client_settings.h"
#include "shm/layout.h"

namespace sustain {

/// Engine-space clients sent /engine/notify 1 and hear /engine/... addresses plus events
/// (/engine/event, /engine/late); mapped clients (a control surface) sent an address of the
/// mapping and hear changes in the mapping's addresses, at their feedback port. Neither hears
/// the change it made itself. Changes are coalesced per parameter and sent at most every
/// kFeedbackIntervalNs per client, with the state table's value then (the newest); a full
/// snapshot follows a subscription, a mapping reload and every failover.
///
/// Clients come and go (docs/clients.md); none can lock out another:
/// - a client holds its place for a lease: any message from it renews it, silence for a
///   whole lease ends it (an engine-space client is told /engine/notify 0);
/// - an ICMP error for its address (port closed, host gone) ends it at once (unreachable());
/// - the tables are bounded (kMaxSubscribers of each kind); a newcomer to a full table takes
///   the place of the client heard from least recently, which is told so (clients never
///   heard from since they subscribed go first: see admit());
/// - a client that is not trusted (an address beyond loopback, over UDP, that --allow does not
///   name: it could be forged) must prove it receives before anything is sent to it: an
///   engine-space client echoes a token, a surface (which cannot) gets no feedback;
/// - a client whose sends fail kMaxSendFailures times in a row is dropped.
/// Every departure is counted by reason in OscMetrics. Thread: the OSC thread, all of it.
class Feedback {
public:
    /// Sends one packet to a client (over UDP, or over its TCP connection when not 0);
    /// false if it could not be sent.
    using SendPacket = std::function<bool(const sockaddr_storage& to, uint32_t tcpConnection, const uint8_t* data,
                                          size_t size)>;

    Feedback(Segment& segment, uint32_t voices, std::shared_ptr<const Mapping> mapping, SendPacket send,
             uint64_t leaseNs = kDefaultLeaseNs);

    /// The reply to /engine/notify: `path` with one int32 argument.
    struct NotifyReply {
        const char* path;   // "/engine/notify" (value: 1 subscribed, 0 not) or "/engine/notify.proof" (value: the token)
        int32_t value;
    };

    /// /engine/notify 1 (`on`) or 0 from `from`, or the echo of /engine/notify.proof with its
    /// `token`. `trusted`: the address cannot be forged (see the class comment); otherwise
    /// /engine/notify 1 is answered with a token, and only its echo subscribes.
    NotifyReply subscribe(const sockaddr_storage& from, uint32_t tcpConnection, bool on, std::optional<int32_t> token,
                          bool trusted, uint64_t nowNs);

    /// A control surface at `from` sent an address of the mapping: from now on it hears
    /// feedback at `feedbackPort` (0: the port it sends from). False if it gets none
    /// (not `trusted`: counted in surfacesUnproven).
    bool registerSurface(const sockaddr_storage& from, uint32_t tcpConnection, uint16_t feedbackPort, bool trusted,
                         uint64_t nowNs);

    /// Any message from `from` renews the leases of the clients sending from there (and of
    /// its host's reply port).
    void heard(const sockaddr_storage& from, uint64_t nowNs);

    /// /engine/reply_port <port> from `from` (0: none): every reply and all feedback for its
    /// host go to that port from now on, the subscriptions it already has included.
    void setReplyPort(const sockaddr_storage& from, uint16_t port, uint64_t nowNs);

    /// The client at `from` set `param` through an address of the engine: its long form
    /// (`/engine/voice/0/freq` rather than `/engine/freq`) and/or the normalised one
    /// (`.../norm`, 0..1). Its feedback for that parameter then comes on that address, so a
    /// widget bound to its own address follows. A client of the /norm addresses that has not
    /// subscribed is registered like a surface (if `trusted`: see registerSurface()).
    void usedAddress(const sockaddr_storage& from, uint32_t param, bool longForm, bool normalised,
                     uint32_t tcpConnection, bool trusted, uint64_t nowNs);

    /// Where a reply to `from` goes (its host's reply port, or `from`). Thread: the OSC thread.
    sockaddr_storage replyAddress(const sockaddr_storage& from) const { return settings_.replyAddress(from); }

    /// What clients asked for themselves (reply ports, fail replies). Thread: the OSC thread.
    ClientSettings& settings() { return settings_; }

    /// The kernel reported an ICMP error for a datagram sent to `to` (port unreachable,
    /// host unreachable): whoever hears feedback there is gone.
    void unreachable(const sockaddr_storage& to);

    /// A new mapping (SIGHUP reload): surfaces get a snapshot in its addresses.
    void setMapping(std::shared_ptr<const Mapping> mapping);

    /// `param` changed; every client but the one at `origin` (null: none) hears it.
    void changed(uint32_t param, const sockaddr_storage* origin);

    /// A timed message was late by `lateMs`: the next /engine/late says the worst.
    void noteLate(double lateMs) { worstLateMs_ = std::max(worstLateMs_, lateMs); }

    /// Ends expired leases, then sends what is due: events (failover, crash, late timed
    /// messages), then changed values.
    void flush(uint64_t nowNs);

    bool empty() const { return subscribers_.empty(); }
    /// Whether some client waits for changed values (the OSC thread then wakes in time).
    bool owed() const;

    static constexpr size_t kMaxSubscribers = 32;  // of each kind
    static constexpr uint32_t kMaxSendFailures = 5;
    static constexpr uint64_t kFeedbackIntervalNs = 20'000'000;  // 50 updates a second per client at most
    static constexpr uint64_t kLateNoticeIntervalNs = 100'000'000ull;
    // Ten minutes: longer than a surface usually sits untouched between songs; a client
    // that listens without sending renews with /engine/notify 1 (docs/clients.md).
    static constexpr uint64_t kDefaultLeaseNs = 600'000'000'000ull;

private:
    struct Subscriber {
        sockaddr_storage address;   // where feedback goes
        uint32_t failures;
        uint32_t tcpConnection;     // 0: UDP to `address`
        sockaddr_storage origin;    // where its messages come from (renewals, "not back to the sender")
        bool mapped;                // address space: the mapping's (true) or the engine's
        std::bitset<kParamCount> dirty;
        std::bitset<kParamCount> labelsDirty;  // its own change: the controls need no echo, the labels do
        bool statusDirty;                      // the status labels (spare, failovers, crashes) are due
        uint64_t lastSentNs;
        uint64_t lastHeardNs;       // the lease runs from here
        uint32_t timesHeard;        // messages from it, its subscription included
        bool engineAddresses;       // a surface of the engine's own /norm addresses, not the mapping's
        uint8_t forms[kParamCount]; // per parameter, the form of address it hears (kLongForm, kNormForm)
    };
    static constexpr uint8_t kLongForm = 1;  // /engine/voice/0/freq, not /engine/freq
    static constexpr uint8_t kNormForm = 2;  // .../norm, 0..1
    enum class Departure { Unsubscribed, Unreachable, LeaseExpired, Evicted, SendFailed };

    /// Whether `subscriber` is the client sending from `from` (whose replies go to `replyTo`).
    static bool isFrom(const Subscriber& subscriber, const sockaddr_storage& from, const sockaddr_storage& replyTo);
    Subscriber& admit(const sockaddr_storage& from, uint32_t tcpConnection, bool mapped, uint64_t nowNs);
    int32_t proofToken(const sockaddr_storage& from) const;
    bool send(const Subscriber& to, const char* path, lo_message message);
    void notifySubscribers(const char* path, lo_message message);
    void notifyEvents();
    void flushValues(uint64_t nowNs);
    /// Sends `subscriber` the text labels showing `param`, or (kParamCount) the status labels.
    bool sendLabels(const Subscriber& subscriber, uint32_t param);
    void expireLeases(uint64_t nowNs);
    void forget(size_t index, Departure why);
    void publishCounts();

    Segment& segment_;
    uint32_t voices_;
    std::shared_ptr<const Mapping> mapping_;
    SendPacket sendPacket_;
    uint64_t leaseNs_;
    uint64_t proofSecret_;           // keys the tokens: unguessable from outside
    std::vector<Subscriber> subscribers_;
    RateLimitedLog<8> log_;          // keyed by Departure, so that churn cannot flood the log
    ClientSettings settings_;
    std::vector<uint8_t> buffer_;  // one serialised message
    uint64_t failoversSeen_ = 0;
    uint64_t crashesSeen_ = 0;
    uint32_t spareSeen_ = 0;
    // /engine/late: at most one per kLateNoticeIntervalNs, with how many timed messages were
    // late since the last one and the worst lateness among them.
    uint64_t lateSeen_ = 0;
    uint64_t lateNoticeNs_ = 0;
    double worstLateMs_ = 0.0;
};

}  // namespace sustain
