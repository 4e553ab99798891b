#include "osc/feedback.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "osc/param_address.h"
#include "osc/socket_address.h"
#include "shm/clock.h"

namespace sustain {

Feedback::Feedback(Segment& segment, uint32_t voices, std::shared_ptr<const Mapping> mapping, SendPacket send)
    : segment_(segment), voices_(voices), mapping_(std::move(mapping)), sendPacket_(std::move(send)) {}

int32_t Feedback::subscribe(const sockaddr_storage& from, uint32_t tcpConnection, bool on) {
    const auto found = std::find_if(subscribers_.begin(), subscribers_.end(), [&](const Subscriber& s) {
        return !s.mapped && sameEndpoint(s.address, from);
    });
    if (!on) {
        if (found != subscribers_.end()) subscribers_.erase(found);
        return 0;
    }
    if (found != subscribers_.end()) return 1;
    const auto engineClients = static_cast<size_t>(
        std::count_if(subscribers_.begin(), subscribers_.end(), [](const Subscriber& s) { return !s.mapped; }));
    if (engineClients >= kMaxSubscribers) {
        spdlog::warn("/engine/notify: {} refused, already {} subscribers", describeAddress(from), kMaxSubscribers);
        return 0;
    }
    Subscriber subscriber{};
    subscriber.address = from;
    subscriber.origin = from;
    subscriber.tcpConnection = tcpConnection;
    subscriber.dirty.set();  // a snapshot follows the confirmation
    subscribers_.push_back(subscriber);
    if (subscribers_.size() == 1) {
        // Events from now on, not the ones before anyone listened.
        failoversSeen_ = segment_.supervisor.failovers.load();
        crashesSeen_ = segment_.supervisor.crashCount.load();
        lateSeen_ = segment_.osc.timedLate.load() +
                    segment_.workers[segment_.control.activeSlot.load() % kWorkerSlots].timedLate.load();
        worstLateMs_ = 0.0;
    }
    return 1;
}

bool Feedback::registerSurface(const sockaddr_storage& from, uint32_t tcpConnection, uint16_t feedbackPort) {
    for (const Subscriber& subscriber : subscribers_)
        if (subscriber.mapped && sameEndpoint(subscriber.origin, from)) return true;
    const auto surfaces = static_cast<size_t>(
        std::count_if(subscribers_.begin(), subscribers_.end(), [](const Subscriber& s) { return s.mapped; }));
    if (surfaces >= kMaxSubscribers) return false;
    Subscriber surface{};
    surface.origin = from;
    // TouchOSC and friends listen on a port of their own (9000 by convention), not the one they send from.
    surface.address = feedbackPort != 0 ? withPort(from, feedbackPort) : from;
    surface.tcpConnection = tcpConnection;
    surface.mapped = true;
    surface.dirty.set();  // a snapshot first: the surface shows the engine as it is
    subscribers_.push_back(surface);
    spdlog::info("control surface {} hears feedback at {}", describeAddress(from), describeAddress(surface.address));
    return true;
}

void Feedback::setMapping(std::shared_ptr<const Mapping> mapping) {
    mapping_ = std::move(mapping);
    for (Subscriber& subscriber : subscribers_)
        if (subscriber.mapped) subscriber.dirty.set();
}

void Feedback::changed(uint32_t param, const sockaddr_storage* origin) {
    for (Subscriber& subscriber : subscribers_) {
        // Not straight back to the client that made the change.
        if (origin != nullptr && sameEndpoint(subscriber.origin, *origin)) continue;
        subscriber.dirty.set(param);
    }
}

bool Feedback::owed() const {
    return std::any_of(subscribers_.begin(), subscribers_.end(), [](const Subscriber& s) { return s.dirty.any(); });
}

void Feedback::flush(uint64_t nowNs) {
    if (subscribers_.empty()) return;
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

void Feedback::drop(size_t index, const char* why) {
    const Subscriber& subscriber = subscribers_[index];
    spdlog::warn("feedback to {} {} after {} failed sends in a row; dropped", describeAddress(subscriber.address), why,
                 subscriber.failures);
    segment_.osc.subscribersDropped.fetch_add(1, std::memory_order_relaxed);
    subscribers_.erase(subscribers_.begin() + static_cast<std::ptrdiff_t>(index));
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
            drop(i, "(/engine/notify)");
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
    if (failovers != failoversSeen_ || crashes != crashesSeen_) {
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
        if (subscriber.dirty.none() || nowNs - subscriber.lastSentNs < kFeedbackIntervalNs) {
            ++i;
            continue;
        }
        bool failed = false;
        std::bitset<kMaxMapEntries> entriesSent;
        for (uint32_t param = 0; param < kParamCount; ++param) {
            if (!subscriber.dirty.test(param)) continue;
            if (param != kParamMasterGain && voiceOfParam(param) >= voices_) continue;
            if (!subscriber.mapped) {
                lo_message message = lo_message_new();
                lo_message_add_float(message, static_cast<float>(tableValue(param)));
                failed = !send(subscriber, paramAddress(param).c_str(), message) || failed;
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
        subscriber.lastSentNs = nowNs;
        if (!failed) {
            subscriber.failures = 0;
        } else if (++subscriber.failures >= kMaxSendFailures) {
            drop(i, subscriber.mapped ? "(control surface)" : "(/engine/notify)");
            continue;
        }
        ++i;
    }
}

}  // namespace sustain
