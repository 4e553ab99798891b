// Who hears what the engine does: parameter changes and events, to subscribed clients and
// to control surfaces (docs/feedback.md).
#pragma once

#include <sys/socket.h>

#include <bitset>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <lo/lo.h>

#include "osc/mapping.h"
#include "shm/layout.h"

namespace sustain {

/// Engine-space clients sent /engine/notify 1 and hear /engine/... addresses plus events
/// (/engine/event, /engine/late); mapped clients (a control surface) sent an address of the
/// mapping and hear changes in the mapping's addresses, at their feedback port. Neither hears
/// the change it made itself. Changes are coalesced per parameter and sent at most every
/// kFeedbackIntervalNs per client, with the state table's value then (the newest); a full
/// snapshot follows a subscription, a mapping reload and every failover. Bounded: at most
/// kMaxSubscribers of each kind; a client that fails kMaxSendFailures sends in a row is
/// dropped, counted. Thread: the OSC thread, all of it.
class Feedback {
public:
    /// Sends one packet to a client (over UDP, or over its TCP connection when not 0);
    /// false if it could not be sent.
    using SendPacket = std::function<bool(const sockaddr_storage& to, uint32_t tcpConnection, const uint8_t* data,
                                          size_t size)>;

    Feedback(Segment& segment, uint32_t voices, std::shared_ptr<const Mapping> mapping, SendPacket send);

    /// /engine/notify 1 (`on`) or 0 from `from`; returns the state to confirm: 1 subscribed,
    /// 0 not (unsubscribed, or refused because kMaxSubscribers already are).
    int32_t subscribe(const sockaddr_storage& from, uint32_t tcpConnection, bool on);

    /// A control surface at `from` sent an address of the mapping: from now on it hears
    /// feedback at `feedbackPort` (0: the port it sends from). False if refused (already
    /// kMaxSubscribers surfaces); true if known or added.
    bool registerSurface(const sockaddr_storage& from, uint32_t tcpConnection, uint16_t feedbackPort);

    /// A new mapping (SIGHUP reload): surfaces get a snapshot in its addresses.
    void setMapping(std::shared_ptr<const Mapping> mapping);

    /// `param` changed; every client but the one at `origin` (null: none) hears it.
    void changed(uint32_t param, const sockaddr_storage* origin);

    /// A timed message was late by `lateMs`: the next /engine/late says the worst.
    void noteLate(double lateMs) { worstLateMs_ = std::max(worstLateMs_, lateMs); }

    /// Sends what is due: events (failover, crash, late timed messages), then changed values.
    void flush(uint64_t nowNs);

    bool empty() const { return subscribers_.empty(); }
    /// Whether some client waits for changed values (the OSC thread then wakes in time).
    bool owed() const;

    static constexpr size_t kMaxSubscribers = 8;  // of each kind
    static constexpr uint32_t kMaxSendFailures = 5;
    static constexpr uint64_t kFeedbackIntervalNs = 20'000'000;  // 50 updates a second per client at most
    static constexpr uint64_t kLateNoticeIntervalNs = 100'000'000ull;

private:
    struct Subscriber {
        sockaddr_storage address;   // where feedback goes
        uint32_t failures;
        uint32_t tcpConnection;     // 0: UDP to `address`
        sockaddr_storage origin;    // where its changes come from (for "not back to the sender")
        bool mapped;                // address space: the mapping's (true) or the engine's
        std::bitset<kParamCount> dirty;
        uint64_t lastSentNs;
    };

    bool send(const Subscriber& to, const char* path, lo_message message);
    void notifySubscribers(const char* path, lo_message message);
    void notifyEvents();
    void flushValues(uint64_t nowNs);
    void drop(size_t index, const char* why);

    Segment& segment_;
    uint32_t voices_;
    std::shared_ptr<const Mapping> mapping_;
    SendPacket sendPacket_;
    std::vector<Subscriber> subscribers_;
    std::vector<uint8_t> buffer_;  // one serialised message
    uint64_t failoversSeen_ = 0;
    uint64_t crashesSeen_ = 0;
    // /engine/late: at most one per kLateNoticeIntervalNs, with how many timed messages were
    // late since the last one and the worst lateness among them.
    uint64_t lateSeen_ = 0;
    uint64_t lateNoticeNs_ = 0;
    double worstLateMs_ = 0.0;
};

}  // namespace sustain
