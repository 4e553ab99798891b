#include "osc/feedback.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "osc/param_address.h"
#include "osc/socket_address.h"
#include "shm/clock.h"

namespace sustain {

namespace {
// A departure's name in logs.
const char* describeDeparture(int why) {
    static constexpr const char* kNames[] = {"unsubscribed", "unreachable (ICMP)", "lease expired",
                                             "evicted for a newcomer", "sends failed"};
    return kNames[why];
}

uint64_t randomSecret() {
    std::random_device device;  // getrandom(2)
    return (static_cast<uint64_t>(device()) << 32) ^ device();
}
}  // namespace

Feedback::Feedback(Segment& segment, uint32_t voices, std::shared_ptr<const Mapping> mapping, SendPacket send,
                   uint64_t leaseNs)
    : segment_(segment),
      voices_(voices),
      mapping_(std::move(mapping)),
      sendPacket_(std::move(send)),
      leaseNs_(leaseNs),
      proofSecret_(randomSecret()),
      settings_(leaseNs) {}

int32_t Feedback::proofToken(const sockaddr_storage& from) const {
    // splitmix64's finaliser over the endpoint and the secret: who does not receive the
    // token at that endpoint cannot compute it.
    uint64_t x = endpointKey(from) ^ proofSecret_;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return static_cast<int32_t>(x & 0x7fffffff);
}

Feedback::NotifyReply Feedback::subscribe(const sockaddr_storage& from, uint32_t tcpConnection, bool on,
                                          std::optional<int32_t> token, bool trusted, uint64_t nowNs) {
    // A client is known by where it hears: the sending port of one with a reply port may change.
    const sockaddr_storage replyTo = replyAddress(from);
    const auto found = std::find_if(subscribers_.begin(), subscribers_.end(), [&](const Subscriber& s) {
        return !s.mapped && sameEndpoint(s.address, replyTo);
    });
    if (!on) {
        if (found != subscribers_.end()) forget(static_cast<size_t>(found - subscribers_.begin()), Departure::Unsubscribed);
        return {"/engine/notify", 0};
    }
    if (found != subscribers_.end()) {
        found->lastHeardNs = nowNs;  // an explicit renewal
        return {"/engine/notify", 1};
    }
    if (!trusted) {
        if (!token) {
            // One datagram of the same size as the request: nothing to gain by forging it.
            segment_.osc.proofsAsked.fetch_add(1, std::memory_order_relaxed);
            return {"/engine/notify.proof", proofToken(replyTo)};
        }
        if (*token != proofToken(replyTo)) {
            segment_.osc.proofsFailed.fetch_add(1, std::memory_order_relaxed);
            log_.warn(7, "/engine/notify from " + describeAddress(from) + ": wrong proof token; not subscribed");
            return {"/engine/notify", 0};
        }
    }
    if (subscribers_.empty()) {
        // Events from now on, not the ones before anyone listened.
        failoversSeen_ = segment_.supervisor.failovers.load();
        crashesSeen_ = segment_.supervisor.crashCount.load();
        lateSeen_ = segment_.osc.timedLate.load() +
                    segment_.workers[segment_.control.activeSlot.load() % kWorkerSlots].timedLate.load();
        worstLateMs_ = 0.0;
    }
    admit(from, tcpConnection, false, nowNs);
    return {"/engine/notify", 1};
}

bool Feedback::registerSurface(const sockaddr_storage& from, uint32_t tcpConnection, uint16_t feedbackPort,
                               bool trusted, uint64_t nowNs) {
    for (const Subscriber& subscriber : subscribers_)
        if (subscriber.mapped && sameEndpoint(subscriber.origin, from)) return true;
    if (!trusted) {
        segment_.osc.surfacesUnproven.fetch_add(1, std::memory_order_relaxed);
        log_.warn(6, "control surface " + describeAddress(from) +
                         " gets no feedback: an address beyond loopback could be forged; name it with --allow "
                         "(docs/clients.md)");
        return false;
    }
    Subscriber& surface = admit(from, tcpConnection, true, nowNs);
    // TouchOSC and friends listen on a port of their own (9000 by convention), not the one
    // they send from: the mapping's feedback port, else the host's reply port, if any.
    if (feedbackPort != 0) surface.address = withPort(from, feedbackPort);
    spdlog::info("control surface {} hears feedback at {}", describeAddress(from), describeAddress(surface.address));
    return true;
}

Feedback::Subscriber& Feedback::admit(const sockaddr_storage& from, uint32_t tcpConnection, bool mapped,
                                      uint64_t nowNs) {
    // A full table makes room: the client of the same kind heard from least recently goes,
    // one never heard from since it subscribed first (it may have been a drive-by: an app
    // that restarted, a scan), so that a flood of those cannot push out the clients that
    // keep talking.
    size_t sameKind = 0;
    size_t victim = subscribers_.size();
    const auto goesBefore = [](const Subscriber& a, const Subscriber& b) {
        const bool aOnce = a.timesHeard <= 1;
        const bool bOnce = b.timesHeard <= 1;
        return aOnce != bOnce ? aOnce : a.lastHeardNs < b.lastHeardNs;
    };
    for (size_t i = 0; i < subscribers_.size(); ++i) {
        if (subscribers_[i].mapped != mapped) continue;
        ++sameKind;
        if (victim == subscribers_.size() || goesBefore(subscribers_[i], subscribers_[victim])) victim = i;
    }
    if (sameKind >= kMaxSubscribers) forget(victim, Departure::Evicted);
    Subscriber subscriber{};
    subscriber.address = tcpConnection == 0 ? replyAddress(from) : from;
    subscriber.origin = from;
    subscriber.tcpConnection = tcpConnection;
    subscriber.mapped = mapped;
    subscriber.dirty.set();  // a snapshot first: the client shows the engine as it is
    subscriber.statusDirty = mapped;
    subscriber.lastHeardNs = nowNs;
    subscriber.timesHeard = 1;
    subscribers_.push_back(subscriber);
    publishCounts();
    return subscribers_.back();
}

bool Feedback::isFrom(const Subscriber& subscriber, const sockaddr_storage& from, const sockaddr_storage& replyTo) {
    // By its sending port; or, for a subscriber with a reply port (whose sending port may
    // change), by where it hears.
    return sameEndpoint(subscriber.origin, from) ||
           (subscriber.tcpConnection == 0 && !subscriber.mapped && sameEndpoint(subscriber.address, replyTo));
}

void Feedback::heard(const sockaddr_storage& from, uint64_t nowNs) {
    settings_.heard(from, nowNs);
    if (subscribers_.empty()) return;
    const sockaddr_storage replyTo = replyAddress(from);
    for (Subscriber& subscriber : subscribers_) {
        if (!isFrom(subscriber, from, replyTo)) continue;
        subscriber.lastHeardNs = nowNs;
        subscriber.timesHeard = std::min<uint32_t>(subscriber.timesHeard + 1, UINT32_MAX - 1);
    }
}

void Feedback::usedAddress(const sockaddr_storage& from, uint32_t param, bool longForm, bool normalised,
                           uint32_t tcpConnection, bool trusted, uint64_t nowNs) {
    const uint8_t form = static_cast<uint8_t>((longForm ? kLongForm : 0) | (normalised ? kNormForm : 0));
    const sockaddr_storage replyTo = replyAddress(from);
    bool known = false;
    for (Subscriber& subscriber : subscribers_) {
        if (!isFrom(subscriber, from, replyTo) || (subscriber.mapped && !subscriber.engineAddresses)) continue;
        known = true;
        // Recorded, not sent now: its own change never comes straight back (a fader that
        // receives its own value while the finger still moves it jumps back).
        subscriber.forms[param] = form;
    }
    if (known || !normalised) return;
    // A client that sends the /norm addresses (Open Stage Control, TouchOSC without a
    // mapping) is served like a surface: registered by its first message, it hears every
    // parameter on those addresses, no events.
    if (!trusted) {
        segment_.osc.surfacesUnproven.fetch_add(1, std::memory_order_relaxed);
        log_.warn(6, "client " + describeAddress(from) +
                         " of the /norm addresses gets no feedback: an address beyond loopback could be forged; "
                         "name it with --allow (docs/clients.md)");
        return;
    }
    Subscriber& client = admit(from, tcpConnection, true, nowNs);
    client.engineAddresses = true;
    for (uint32_t p = 0; p < kParamCount; ++p)
        client.forms[p] = static_cast<uint8_t>(kNormForm | (p == param ? form : 0));
    spdlog::info("client {} of the /norm addresses hears feedback at {}", describeAddress(from),
                 describeAddress(client.address));
}

void Feedback::setReplyPort(const sockaddr_storage& from, uint16_t port, uint64_t nowNs) {
    const sockaddr_storage before = replyAddress(from);
    settings_.setReplyPort(from, port, nowNs);
    const sockaddr_storage after = replyAddress(from);
    for (Subscriber& subscriber : subscribers_)
        if (subscriber.tcpConnection == 0 && !subscriber.mapped && sameEndpoint(subscriber.address, before))
            subscriber.address = after;
}

void Feedback::unreachable(const sockaddr_storage& to) {
    for (size_t i = 0; i < subscribers_.size();) {
        if (subscribers_[i].tcpConnection == 0 && sameEndpoint(subscribers_[i].address, to))
            forget(i, Departure::Unreachable);
        else
            ++i;
    }
}

void Feedback::expireLeases(uint64_t nowNs) {
    for (size_t i = 0; i < subscribers_.size();) {
        if (nowNs - subscribers_[i].lastHeardNs > leaseNs_)
            forget(i, Departure::LeaseExpired);
        else
            ++i;
    }
}

void Feedback::forget(size_t index, Departure why) {
    const Subscriber subscriber = subscribers_[index];
    subscribers_.erase(subscribers_.begin() + static_cast<std::ptrdiff_t>(index));
    OscMetrics& m = segment_.osc;
    switch (why) {
        case Departure::Unsubscribed: m.leftUnsubscribed.fetch_add(1, std::memory_order_relaxed); break;
        case Departure::Unreachable: m.leftUnreachable.fetch_add(1, std::memory_order_relaxed); break;
        case Departure::LeaseExpired: m.leftLeaseExpired.fetch_add(1, std::memory_order_relaxed); break;
        case Departure::Evicted: m.leftEvicted.fetch_add(1, std::memory_order_relaxed); break;
        case Departure::SendFailed: m.subscribersDropped.fetch_add(1, std::memory_order_relaxed); break;
    }
    publishCounts();
    if (why != Departure::Unsubscribed)
        log_.warn(static_cast<size_t>(why), std::string(subscriber.mapped ? "control surface " : "subscriber ") +
                                                describeAddress(subscriber.origin) + " forgotten: " +
                                                describeDeparture(static_cast<int>(why)));
    // A client that may still listen learns that it no longer hears anything, and can
    // subscribe again. A surface has no address for it.
    if (!subscriber.mapped && (why == Departure::Evicted || why == Departure::LeaseExpired)) {
        lo_message message = lo_message_new();
        lo_message_add_int32(message, 0);
        send(subscriber, "/engine/notify", message);
        lo_message_free(message);
    }
}

void Feedback::publishCounts() {
    const auto surfaces = static_cast<uint64_t>(
        std::count_if(subscribers_.begin(), subscribers_.end(), [](const Subscriber& s) { return s.mapped; }));
    segment_.osc.surfacesNow.store(surfaces, std::memory_order_relaxed);
    segment_.osc.subscribersNow.store(subscribers_.size() - surfaces, std::memory_order_relaxed);
}

void Feedback::setMapping(std::shared_ptr<const Mapping> mapping) {
    mapping_ = std::move(mapping);
    for (Subscriber& subscriber : subscribers_) {
        if (!subscriber.mapped) continue;
        subscriber.dirty.set();
        subscriber.statusDirty = true;
    }
}

void Feedback::changed(uint32_t param, const sockaddr_storage* origin) {
    const sockaddr_storage originReply = origin != nullptr ? replyAddress(*origin) : sockaddr_storage{};
    for (Subscriber& subscriber : subscribers_) {
        // Not straight back to the client that made the change; but its labels show the
        // new value (the text beside the fader it moves).
        if (subscriber.mapped) subscriber.labelsDirty.set(param);
        if (origin != nullptr && isFrom(subscriber, *origin, originReply)) continue;
        subscriber.dirty.set(param);
    }
}

bool Feedback::owed() const {
    return std::any_of(subscribers_.begin(), subscribers_.end(), [](const Subscriber& s) {
        return s.dirty.any() || s.labelsDirty.any() || s.statusDirty;
    });
}

void Feedback::flush(uint64_t nowNs) {
    if (subscribers_.empty()) return;
    expireLeases(nowNs);
    notifyEvents();
    flushValues(nowNs);
}

bool Feedback::send(const Subscriber& to, const char* path, lo_message message) {
    size_t size = lo_message_length(message, path);
    if (size > buffer_.size()) buffer_.resize(size);
    if (lo_message_serialise(message, path, buffer_.data(), &size) == nullptr) return true;  // nothing to send
    if (!sendPacket_(to.address, to.tcpConnection, buffer_.data(), size)) return false;
    segment_.osc.repliesSent.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void Feedback::notifySubscribers(const char* path, lo_message message) {
    for (size_t i = 0; i < subscribers_.size();) {
        Subscriber& subscriber = subscribers_[i];
        if (subscriber.mapped) {  // events are the engine's words: surfaces have no address for them
            ++i;
            continue;
        }
        if (send(subscriber, path, message)) {
            subscriber.failures = 0;
        } else if (++subscriber.failures >= kMaxSendFailures) {
            forget(i, Departure::SendFailed);
            continue;
        }
        ++i;
    }
}

void Feedback::notifyEvents() {
    // Failovers are sustaind's main thread's business; the OSC thread, which owns the
    // subscribers, looks at its counters whenever it wakes (at least every 100 ms).
    const uint64_t failovers = segment_.supervisor.failovers.load(std::memory_order_acquire);
    const uint64_t crashes = segment_.supervisor.crashCount.load(std::memory_order_acquire);
    const bool changedCounts = failovers != failoversSeen_ || crashes != crashesSeen_;
    if (changedCounts) {
        lo_message event = lo_message_new();
        lo_message_add_string(event, failovers != failoversSeen_ ? "failover" : "crash");
        lo_message_add_int32(event, static_cast<int32_t>(segment_.control.activeSlot.load(std::memory_order_acquire)));
        lo_message_add_int32(event, static_cast<int32_t>(crashes));
        lo_message_add_int32(event, static_cast<int32_t>(segment_.supervisor.spareReady.load(std::memory_order_acquire)));
        notifySubscribers("/engine/event", event);
        lo_message_free(event);
        // A failover is the moment a client may doubt what plays: every client gets a snapshot.
        for (Subscriber& subscriber : subscribers_) subscriber.dirty.set();
        failoversSeen_ = failovers;
        crashesSeen_ = crashes;
    }
    const uint32_t spare = segment_.supervisor.spareReady.load(std::memory_order_acquire);
    if (spare != spareSeen_ || changedCounts) {
        for (Subscriber& subscriber : subscribers_) subscriber.statusDirty = subscriber.mapped;
        spareSeen_ = spare;
    }
    // Late timed messages: those the OSC thread found late, and those a worker did.
    const uint32_t active = segment_.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
    const uint64_t late = segment_.osc.timedLate.load(std::memory_order_relaxed) +
                          segment_.workers[active].timedLate.load(std::memory_order_relaxed);
    const uint64_t nowNs = monotonicNs();
    if (late > lateSeen_ && nowNs - lateNoticeNs_ >= kLateNoticeIntervalNs) {
        lo_message notice = lo_message_new();
        lo_message_add_int32(notice, static_cast<int32_t>(late - lateSeen_));
        lo_message_add_float(notice, static_cast<float>(worstLateMs_));
        notifySubscribers("/engine/late", notice);
        lo_message_free(notice);
        segment_.osc.lateNotifications.fetch_add(1, std::memory_order_relaxed);
        lateSeen_ = late;
        lateNoticeNs_ = nowNs;
        worstLateMs_ = 0.0;
    }
}

void Feedback::flushValues(uint64_t nowNs) {
    auto tableValue = [this](uint32_t param) {
        return segment_.params.entries[param].value.load(std::memory_order_acquire);
    };
    for (size_t i = 0; i < subscribers_.size();) {
        Subscriber& subscriber = subscribers_[i];
        const bool due = subscriber.dirty.any() || subscriber.labelsDirty.any() || subscriber.statusDirty;
        if (!due || nowNs - subscriber.lastSentNs < kFeedbackIntervalNs) {
            ++i;
            continue;
        }
        bool failed = false;
        std::bitset<kMaxMapEntries> entriesSent;
        if (subscriber.statusDirty && mapping_) failed = !sendLabels(subscriber, kParamCount);
        for (uint32_t param = 0; param < kParamCount; ++param) {
            if (!subscriber.dirty.test(param) && !subscriber.labelsDirty.test(param)) continue;
            if (param != kParamMasterGain && voiceOfParam(param) >= voices_) continue;
            if (subscriber.mapped && !subscriber.engineAddresses && mapping_)
                failed = !sendLabels(subscriber, param) || failed;
            if (!subscriber.dirty.test(param)) continue;
            if (!subscriber.mapped || subscriber.engineAddresses) {
                // In the form of address the client itself used for this parameter.
                const uint8_t form = subscriber.forms[param];
                std::string address = (form & kLongForm) != 0 ? longParamAddress(param) : paramAddress(param);
                double value = tableValue(param);
                if ((form & kNormForm) != 0) {
                    address += "/norm";
                    if (const std::optional<MapTarget> alias =
                            normalisedAlias(address, voices_, segment_.config.sampleRate))
                        value = valueToCurve(*alias, value);
                }
                lo_message message = lo_message_new();
                lo_message_add_float(message, static_cast<float>(value));
                failed = !send(subscriber, address.c_str(), message) || failed;
                lo_message_free(message);
                continue;
            }
            if (!mapping_) continue;
            // Every control showing this parameter, with all its arguments (an xy pad moves as one).
            for (const MapRef& ref : mapping_->showing(param)) {
                if (ref.entry >= kMaxMapEntries || entriesSent.test(ref.entry)) continue;
                entriesSent.set(ref.entry);
                const MapEntry& entry = mapping_->entries()[ref.entry];
                lo_message message = lo_message_new();
                for (const MapTarget& target : entry.targets)
                    lo_message_add_float(message, static_cast<float>(valueToCurve(target, tableValue(target.param))));
                failed = !send(subscriber, entry.address.c_str(), message) || failed;
                lo_message_free(message);
            }
        }
        subscriber.dirty.reset();
        subscriber.labelsDirty.reset();
        subscriber.statusDirty = false;
        subscriber.lastSentNs = nowNs;
        if (!failed) {
            subscriber.failures = 0;
        } else if (++subscriber.failures >= kMaxSendFailures) {
            forget(i, Departure::SendFailed);
            continue;
        }
        ++i;
    }
}

bool Feedback::sendLabels(const Subscriber& subscriber, uint32_t param) {
    bool sent = true;
    for (const LabelEntry& label : mapping_->labels()) {
        double value = 0.0;
        switch (label.source) {
            case LabelSource::Param:
                if (param != label.param) continue;
                value = segment_.params.entries[param].value.load(std::memory_order_acquire);
                break;
            case LabelSource::Spare:
                if (param != kParamCount) continue;
                value = segment_.supervisor.spareReady.load(std::memory_order_acquire);
                break;
            case LabelSource::Failovers:
                if (param != kParamCount) continue;
                value = static_cast<double>(segment_.supervisor.failovers.load(std::memory_order_acquire));
                break;
            case LabelSource::Crashes:
                if (param != kParamCount) continue;
                value = static_cast<double>(segment_.supervisor.crashCount.load(std::memory_order_acquire));
                break;
        }
        char text[kMaxLabelFormatBytes + 64];
        formatLabel(label, value, text, sizeof text);
        lo_message message = lo_message_new();
        lo_message_add_string(message, text);
        const bool ok = send(subscriber, label.address.c_str(), message);
        lo_message_free(message);
        if (ok) segment_.osc.labelsSent.fetch_add(1, std::memory_order_relaxed);
        sent = ok && sent;
    }
    return sent;
}

}  // namespace sustain
