// The OSC thread's answers to the engine's own requests: /engine/ping, /engine/status,
// /engine/version, /engine/notify (subscriptions, kept by Feedback), /engine/reply_port,
// /engine/sync (answered once the audio applied every change accepted before it), and the
// scsynth-style /engine/error, /engine/dumpOSC, /engine/clearSched and /engine/panic.
// Part of OscServer.
#include <spdlog/spdlog.h>

#include "osc/osc_arguments.h"
#include "osc/osc_server.h"
#include "shm/command_order.h"
#include "shm/metrics.h"
#include "shm/seqlock.h"
#include "sustain_version.h"

namespace sustain {

bool OscServer::handleEngineRequest(std::string_view path, lo_message message, const sockaddr_storage& from) {
    if (path == "/engine/ping") {
        lo_message reply = lo_message_new();
        sendTo(from, "/engine/pong", reply);
        lo_message_free(reply);
        return true;
    }
    if (path == "/engine/status") {
        // The essentials, as scsynth's /status.reply: active slot, spare ready, crash count,
        // xruns of the active worker, received, applied, dropped, latency p99 (samples),
        // callback load of the active worker (percent).
        const uint32_t active = segment_.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
        uint64_t applied = 0;
        for (const WorkerMetrics& worker : segment_.workers) applied += worker.applied.load(std::memory_order_relaxed);
        const Percentiles latency = histogramPercentiles(segment_.workers[active].latencyBins, kLatencyBins + 1);
        lo_message reply = lo_message_new();
        lo_message_add_int32(reply, static_cast<int32_t>(active));
        lo_message_add_int32(reply, static_cast<int32_t>(segment_.supervisor.spareReady.load()));
        lo_message_add_int32(reply, static_cast<int32_t>(segment_.supervisor.crashCount.load()));
        lo_message_add_int32(reply, static_cast<int32_t>(segment_.slots[active].xruns.load()));
        lo_message_add_int32(reply, static_cast<int32_t>(segment_.osc.received.load()));
        lo_message_add_int32(reply, static_cast<int32_t>(applied));
        lo_message_add_int32(reply, static_cast<int32_t>(segment_.osc.kernelDrops.load()));
        lo_message_add_float(reply, static_cast<float>(latency.p99));
        lo_message_add_float(reply, static_cast<float>(segment_.slots[active].loadPermille.load() / 10.0));
        sendTo(from, "/engine/status.reply", reply);
        lo_message_free(reply);
        return true;
    }
    if (path == "/engine/version") {
        // As scsynth's /version.reply: program name, major, minor, patch, then the version text.
        lo_message reply = lo_message_new();
        lo_message_add_string(reply, "sustain");
        lo_message_add_int32(reply, SUSTAIN_VERSION_MAJOR);
        lo_message_add_int32(reply, SUSTAIN_VERSION_MINOR);
        lo_message_add_int32(reply, SUSTAIN_VERSION_PATCH);
        lo_message_add_string(reply, SUSTAIN_VERSION);
        sendTo(from, "/engine/version.reply", reply);
        lo_message_free(reply);
        return true;
    }
    if (path == "/engine/error" || path == "/engine/dumpOSC") {
        const char* types = lo_message_get_types(message);
        lo_arg** argv = lo_message_get_argv(message);
        const std::optional<double> on =
            lo_message_get_argc(message) == 1 && types != nullptr ? controlArgument(types[0], argv[0]) : std::nullopt;
        if (!on) {
            reject(RejectReason::BadType, std::string(path) + ": expected 1 or 0; message ignored", from, path);
            return true;
        }
        if (path == "/engine/error") {
            feedback_.settings().setFailReplies(from, *on != 0.0, monotonicNs());
        } else {
            tracing_ = *on != 0.0;
            segment_.osc.tracing.store(tracing_ ? 1 : 0, std::memory_order_relaxed);
            spdlog::info("/engine/dumpOSC {} (from {}): {}", tracing_ ? 1 : 0, describeAddress(from),
                         tracing_ ? "every message received is written to the log, at most 100 a second"
                                  : "messages are no longer written to the log");
        }
        return true;
    }
    if (path == "/engine/panic") {
        panic(from);
        return true;
    }
    if (path == "/engine/clearSched") {
        // Timed changes still waiting are dropped (scsynth's /clearSched).
        const size_t cleared = router_.clearTimed();
        segment_.osc.timedCleared.fetch_add(cleared, std::memory_order_relaxed);
        segment_.osc.timedPending.store(router_.timedWaiting(), std::memory_order_relaxed);
        return true;
    }
    if (path == "/engine/sync") {
        requestSync(message, from);
        return true;
    }
    if (path == "/engine/reply_port") {
        const std::optional<uint16_t> port = replyPortArgument(message, 0, from);
        if (!port) return true;
        feedback_.setReplyPort(from, *port, monotonicNs());
        // The confirmation goes where replies go now: a client that hears it is set up.
        lo_message reply = lo_message_new();
        lo_message_add_int32(reply, *port);
        sendTo(from, "/engine/reply_port", reply);
        lo_message_free(reply);
        return true;
    }
    if (path == "/engine/notify" || path == "/engine/notify.proof") {
        // /engine/notify 1|0; or the client echoes the /engine/notify.proof <token> it was
        // sent, which subscribes it (docs/clients.md).
        const char* types = lo_message_get_types(message);
        lo_arg** argv = lo_message_get_argv(message);
        const int argc = lo_message_get_argc(message);
        const bool echo = path == "/engine/notify.proof";
        // A malformed echo carries a token no endpoint has (tokens are 31-bit, never negative).
        std::optional<int32_t> token;
        if (echo) token = argc == 1 && types[0] == LO_INT32 ? loArg<int32_t>(argv[0]) : -1;
        const std::optional<double> argument =
            !echo && argc >= 1 && types != nullptr ? controlArgument(types[0], argv[0]) : std::nullopt;
        const bool on = echo || argument.value_or(0.0) != 0.0;
        // /engine/notify 1 <port>: the reply port first, so that the answer goes there too.
        if (!echo && on && argc == 2) {
            const std::optional<uint16_t> port = replyPortArgument(message, 1, from);
            if (!port) return true;
            feedback_.setReplyPort(from, *port, monotonicNs());
        }
        const Feedback::NotifyReply answer =
            feedback_.subscribe(from, tcpConnectionOf(from), on, token, trusted(from), monotonicNs());
        lo_message reply = lo_message_new();
        lo_message_add_int32(reply, answer.value);
        sendTo(from, answer.path, reply);
        lo_message_free(reply);
        return true;
    }
    return false;
}

std::optional<uint16_t> OscServer::replyPortArgument(lo_message message, int index, const sockaddr_storage& from) {
    const char* types = lo_message_get_types(message);
    lo_arg** argv = lo_message_get_argv(message);
    const int argc = lo_message_get_argc(message);
    const std::optional<double> number =
        index < argc && types != nullptr ? numberArgument(types[index], argv[index]) : std::nullopt;
    if (!number) {
        reject(RejectReason::BadType, "reply port: expected a port number (i or f); message ignored", from);
        return std::nullopt;
    }
    if (!(*number >= 0.0 && *number <= 65535.0) || *number != static_cast<double>(static_cast<int32_t>(*number))) {
        reject(RejectReason::OutOfRange, "reply port: " + std::to_string(*number) + " is not a port (0..65535)", from);
        return std::nullopt;
    }
    return static_cast<uint16_t>(*number);
}

void OscServer::requestSync(lo_message message, const sockaddr_storage& from) {
    // The reply carries the request's own arguments back, whatever their type (an int id
    // as scsynth's /sync takes, or a string).
    lo_message reply = lo_message_new();
    const char* types = lo_message_get_types(message);
    lo_arg** argv = lo_message_get_argv(message);
    const int argc = lo_message_get_argc(message);
    for (int i = 0; i < argc && i < 4 && types != nullptr; ++i) {
        switch (types[i]) {
            case LO_INT32: lo_message_add_int32(reply, loArg<int32_t>(argv[i])); break;
            case LO_FLOAT: lo_message_add_float(reply, loArg<float>(argv[i])); break;
            case LO_INT64: lo_message_add_int64(reply, loArg<int64_t>(argv[i])); break;
            case LO_STRING: lo_message_add_string(reply, &argv[i]->s); break;
            default: break;
        }
    }
    if (syncs_.size() >= kMaxPendingSyncs) {
        segment_.osc.syncsRefused.fetch_add(1, std::memory_order_relaxed);
        sendTo(from, "/engine/sync.failed", reply);
        lo_message_free(reply);
        rejectLog_.warn(125, "/engine/sync: " + std::to_string(kMaxPendingSyncs) + " requests already wait; refused (from " +
                                 describeAddress(from) + ")");
        return;
    }
    PendingSync sync{};
    sync.from = from;
    sync.reply = reply;
    sync.deadlineNs = monotonicNs() + kSyncTimeoutNs;
    for (uint32_t p = 0; p < kParamCount; ++p)
        sync.versions[p] = segment_.params.entries[p].version.load(std::memory_order_acquire);
    syncs_.push_back(sync);
    answerSyncs(monotonicNs());
}

void OscServer::answerSyncs(uint64_t nowNs) {
    // What the active worker has applied, from its published end-of-block state.
    const uint32_t active = segment_.control.activeSlot.load(std::memory_order_acquire);
    PublishedRender published{};
    bool haveState = false;
    if (active < kWorkerSlots) {
        // Only what the process now holding the active slot applied counts: a dead one's
        // last state says nothing about what plays.
        haveState = seqlockRead(segment_.state[active].sequence, segment_.state[active].words, published) &&
                    published.epoch == segment_.slots[active].epoch.load(std::memory_order_acquire);
    }
    const RenderState& state = published.state;
    for (size_t i = 0; i < syncs_.size();) {
        PendingSync& sync = syncs_[i];
        bool done = haveState;
        for (uint32_t p = 0; p < kParamCount && done; ++p) done = alreadyHeld(sync.versions[p], state.appliedSequence[p]);
        if (!done && nowNs < sync.deadlineNs) {
            ++i;
            continue;
        }
        if (done) {
            segment_.osc.syncsAnswered.fetch_add(1, std::memory_order_relaxed);
            sendTo(sync.from, "/engine/synced", sync.reply);
        } else {
            segment_.osc.syncsRefused.fetch_add(1, std::memory_order_relaxed);
            sendTo(sync.from, "/engine/sync.failed", sync.reply);
            spdlog::warn("/engine/sync from {}: the audio did not apply the earlier changes within {} s",
                         describeAddress(sync.from), kSyncTimeoutNs / 1'000'000'000ull);
        }
        lo_message_free(sync.reply);
        syncs_.erase(syncs_.begin() + static_cast<std::ptrdiff_t>(i));
    }
}

void OscServer::panic(const sockaddr_storage& from) {
    // Silence now (master gain 0, which every client hears as feedback) and nothing queued
    // left to undo it.
    const size_t cleared = router_.clearTimed();
    segment_.osc.timedCleared.fetch_add(cleared, std::memory_order_relaxed);
    segment_.osc.timedPending.store(router_.timedWaiting(), std::memory_order_relaxed);
    segment_.osc.panics.fetch_add(1, std::memory_order_relaxed);
    router_.submit(kParamMasterGain, 0.0, monotonicNs());
    feedback_.changed(kParamMasterGain, nullptr);
    spdlog::warn("panic from {}: master gain 0, {} timed messages dropped", describeAddress(from), cleared);
}

}  // namespace sustain
