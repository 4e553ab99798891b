#include "tools/status/status_snapshot.h"

#include <algorithm>
#include <cmath>

#include "shm/frame_clock.h"
#include "shm/seqlock.h"

namespace sustain {

namespace {

const char* stateName(uint32_t state) {
    switch (static_cast<WorkerState>(state)) {
        case WorkerState::Empty: return "empty";
        case WorkerState::Starting: return "starting";
        case WorkerState::Warm: return "warm";
        case WorkerState::Active: return "active";
        case WorkerState::Fenced: return "fenced";
        case WorkerState::Dead: return "dead";
    }
    return "unknown";
}

const char* degradedName(uint32_t reason) {
    switch (static_cast<DegradedReason>(reason)) {
        case DegradedReason::None: return "";
        case DegradedReason::NoSpare: return "no spare worker ready";
        case DegradedReason::BackingOff: return "crash loop: restarts are backing off";
        case DegradedReason::NoOutputSpare: return "no spare output stage ready";
        case DegradedReason::ColdStart: return "cold start";
        case DegradedReason::WaitingForDevice: return "the audio device is gone: waiting for it to come back";
        case DegradedReason::StuckProcess: return "a killed process does not die (stuck in the kernel): its slot waits";
    }
    return "unknown";
}

double ageMs(uint64_t nowNs, uint64_t thenNs) {
    if (thenNs == 0) return -1;
    return nowNs > thenNs ? static_cast<double>(nowNs - thenNs) / 1e6 : 0.0;
}

ProcessStatus readProcess(const WorkerSlot& slot, const char* kind, uint32_t index, bool playing, uint64_t nowNs) {
    ProcessStatus p;
    p.kind = kind;
    p.slot = index;
    p.pid = slot.pid.load(std::memory_order_acquire);
    const auto role = static_cast<WorkerRole>(slot.role.load(std::memory_order_acquire));
    if (p.kind == "output")
        p.role = playing ? "output" : "output-standby";
    else
        p.role = role == WorkerRole::Active ? "active" : role == WorkerRole::Standby ? "standby" : "none";
    // No process in the slot (between a death and the replacement's fork): its pid is
    // reported as null and its state as "replacing", never as a pid 0 a script could kill.
    p.state = p.pid == 0 ? "replacing" : stateName(slot.state.load(std::memory_order_acquire));
    p.callbacks = slot.callbacks.load(std::memory_order_acquire);
    p.xruns = slot.xruns.load(std::memory_order_relaxed);
    p.caughtUpBlocks = slot.caughtUpBlocks.load(std::memory_order_relaxed);
    p.handbacks = slot.handbacks.load(std::memory_order_relaxed);
    p.cpuLoad = slot.loadPermille.load(std::memory_order_relaxed) / 1000.0;
    p.cpuLoadPeak = slot.loadPeakPermille.load(std::memory_order_relaxed) / 1000.0;
    p.heartbeatAgeMs = ageMs(nowNs, slot.lastCallbackNs.load(std::memory_order_acquire));
    // Written once, before the slot became active; a bounded copy of a read-only mapping.
    p.device.assign(slot.deviceName, strnlen(slot.deviceName, sizeof slot.deviceName));
    return p;
}

void readHosts(const Segment& segment, StatusSnapshot& s) {
    const HostsRegion& hosts = segment.hosts;
    const uint32_t preferred = hosts.preferred.load(std::memory_order_acquire) % kRenderHostSlots;
    s.hostPlayoutPeriods = hosts.playoutPeriods.load();
    s.hostsFromPreferred = hosts.fromPreferred.load();
    s.hostsFromOther = hosts.fromOther.load();
    s.hostsOutOfStepPlayed = hosts.outOfStepPlayed.load();
    s.hostsUnfilled = hosts.unfilled.load();
    s.hostsCompared = hosts.compared.load();
    s.hostsMatched = hosts.matched.load();
    s.hostFailovers = hosts.failovers.load();
    s.hostsSkippedCycles = hosts.skippedCycles.load();
    for (uint32_t row = 0; row < kRenderHostSlots; ++row) {
        const RenderHostSlot& slot = hosts.hosts[row];
        const auto state = static_cast<HostState>(slot.state.load(std::memory_order_acquire));
        if (state == HostState::Empty) continue;
        HostStatus h;
        h.row = row;
        h.name.assign(slot.netName, strnlen(slot.netName, sizeof slot.netName));
        h.address.assign(slot.address, strnlen(slot.address, sizeof slot.address));
        h.state = state == HostState::InStep ? "in_step" : state == HostState::Down ? "down" : "joining";
        h.role = row == preferred && state == HostState::InStep ? "active" : state == HostState::InStep ? "standby" : "none";
        h.connected = slot.connected.load() != 0;
        h.portsWired = slot.connectedPorts.load() != 0;
        h.blocks = slot.blocks.load();
        h.lateBlocks = slot.lateBlocks.load();
        h.outOfStepBlocks = slot.outOfStepBlocks.load();
        h.played = slot.played.load();
        h.joins = slot.joins.load();
        h.downs = slot.downs.load();
        h.snapshotsSent = slot.snapshotsSent.load();
        h.commandsSent = slot.commandsSent.load();
        h.recoveredBlocks = slot.recoveredBlocks.load();
        h.latencyCycles = slot.latencyCycles.load();
        h.warmMsLast = slot.warmUsLast.load() / 1000.0;
        h.warmMsMax = slot.warmUsMax.load() / 1000.0;
        s.hosts.push_back(h);
    }
}

}  // namespace

StatusSnapshot takeSnapshot(const Segment& segment, uint64_t nowNs) {
    StatusSnapshot s;
    const EngineConfig& config = segment.config;
    s.instance.assign(config.instance, strnlen(config.instance, sizeof config.instance));
    s.nowNs = nowNs;
    s.uptimeS = static_cast<double>(nowNs - segment.header.createdNs) / 1e9;
    s.sampleRate = config.sampleRate;
    s.framesPerBuffer = config.framesPerBuffer;
    s.voices = std::min(config.voices, kMaxVoices);
    s.layout = config.layout == static_cast<uint32_t>(OutputLayout::Relay) ? "relay" : "direct";
    s.supervisorPid = segment.control.supervisorPid.load(std::memory_order_acquire);
    s.supervisorHeartbeatAgeMs = ageMs(nowNs, segment.control.supervisorHeartbeatNs.load(std::memory_order_acquire));

    const OscMetrics& osc = segment.osc;
    s.received = osc.received.load();
    s.accepted = osc.accepted.load();
    s.rejected = osc.rejected.load();
    s.rejectedMalformed = osc.rejectedMalformed.load();
    s.rejectedUnknownAddress = osc.rejectedUnknownAddress.load();
    s.rejectedBadType = osc.rejectedBadType.load();
    s.rejectedArgCount = osc.rejectedArgCount.load();
    s.rejectedNotFinite = osc.rejectedNotFinite.load();
    s.rejectedOutOfRange = osc.rejectedOutOfRange.load();
    s.rejectedOversize = osc.rejectedOversize.load();
    s.kernelDrops = osc.kernelDrops.load();
    s.ringCoalesced = osc.ringCoalesced.load();
    s.repliesSent = osc.repliesSent.load();
    s.receiveBatches = osc.receiveBatches.load();
    s.subscribersDropped = osc.subscribersDropped.load();
    s.rejectedSender = osc.rejectedSender.load();
    s.dropped = s.kernelDrops;  // everything else coalesces; nothing is dropped after the kernel
    s.rejectedScheduleFull = osc.rejectedScheduleFull.load();
    s.rejectedTooFarAhead = osc.rejectedTooFarAhead.load();
    s.rejectedSenderQuota = osc.rejectedSenderQuota.load();
    s.tinyFlushed = osc.tinyFlushed.load();
    s.subscribersNow = osc.subscribersNow.load();
    s.surfacesNow = osc.surfacesNow.load();
    s.leftUnsubscribed = osc.leftUnsubscribed.load();
    s.leftUnreachable = osc.leftUnreachable.load();
    s.leftLeaseExpired = osc.leftLeaseExpired.load();
    s.leftEvicted = osc.leftEvicted.load();
    s.proofsAsked = osc.proofsAsked.load();
    s.proofsFailed = osc.proofsFailed.load();
    s.surfacesUnproven = osc.surfacesUnproven.load();
    s.icmpErrors = osc.icmpErrors.load();
    s.tcpIdleClosed = osc.tcpIdleClosed.load();
    s.tcpEvicted = osc.tcpEvicted.load();
    s.tracing = osc.tracing.load() != 0;
    s.traced = osc.traced.load();
    s.failRepliesSent = osc.failRepliesSent.load();
    s.timedCleared = osc.timedCleared.load();
    s.panics = osc.panics.load();
    s.patternMessages = osc.patternMessages.load();
    s.patternTargets = osc.patternTargets.load();
    s.surfaceIgnored = osc.surfaceIgnored.load();
    s.labelsSent = osc.labelsSent.load();
    s.tcpConnections = osc.tcpConnections.load();
    s.tcpAccepted = osc.tcpAccepted.load();
    s.tcpRefused = osc.tcpRefused.load();
    s.tcpClosedOnError = osc.tcpClosedOnError.load();
    s.tcpFramingErrors = osc.tcpFramingErrors.load();
    s.tcpRepliesDropped = osc.tcpRepliesDropped.load();
    s.timedScheduled = osc.timedScheduled.load();
    s.timedLate = osc.timedLate.load();
    s.timedPending = osc.timedPending.load();
    s.syncsAnswered = osc.syncsAnswered.load();
    s.syncsRefused = osc.syncsRefused.load();
    s.lateNotifications = osc.lateNotifications.load();
    for (uint32_t w = 0; w < kWorkerSlots; ++w) {
        // Only the active counts applied and late ones; a failover moves the counting.
        s.timedApplied += segment.workers[w].timedApplied.load();
        s.timedLate += segment.workers[w].timedLate.load();
        s.timedOverflow += segment.workers[w].timedOverflow.load();
    }
    s.timedLateFramesLast =
        segment.workers[segment.control.activeSlot.load() % kWorkerSlots].timedLateFramesLast.load();
    {
        // Bin b holds lateness in [2^(b-1), 2^b) ms: report each percentile as its bin's upper edge.
        const Percentiles bins = histogramPercentiles(osc.lateBins, kLateBins);
        auto edge = [](double bin) { return bin <= 0 ? 1.0 : std::ldexp(1.0, static_cast<int>(bin)); };
        s.lateMs = bins;
        s.lateMs.p50 = bins.count ? edge(bins.p50) : 0;
        s.lateMs.p95 = bins.count ? edge(bins.p95) : 0;
        s.lateMs.p99 = bins.count ? edge(bins.p99) : 0;
        s.lateMs.max = bins.count ? edge(bins.max) : 0;
    }
    s.playLatencyFrames = segment.clock.playLatencyFrames.load();
    s.reportedLatencyFrames = segment.clock.reportedLatencyFrames.load();
    FrameAnchor anchor{};
    s.frameClock = readFrameClock(segment, anchor);
    if (s.frameClock) {
        s.frameClockSource = anchor.source == static_cast<uint64_t>(FrameClockSource::Jack) ? "jack" : "callback";
        s.measuredRateHz = 1e9 / anchor.nsPerFrame;
    }

    s.activeSlot = segment.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
    const WorkerMetrics& active = segment.workers[s.activeSlot];
    // Applied and coalesced over both slots' lifetimes: a failover moves the counting to
    // the other slot, and the reader wants the totals.
    for (uint32_t w = 0; w < kWorkerSlots; ++w) {
        s.applied += segment.workers[w].applied.load();
        s.controlCoalesced += segment.workers[w].controlCoalesced.load();
        s.callbackCoalesced += segment.workers[w].callbackCoalesced.load();
        s.workerWakes += segment.workers[w].wakesSent.load();
    }
    s.coalesced = s.ringCoalesced + s.controlCoalesced + s.callbackCoalesced;
    s.latencySamples = histogramPercentiles(active.latencyBins, kLatencyBins + 1);
    // 16 coarse bins of 16 samples for the live view's sparkline.
    s.latencyBins.assign(16, 0);
    for (uint32_t i = 0; i <= kLatencyBins; ++i)
        s.latencyBins[std::min<uint32_t>(i / 16, 15)] += active.latencyBins[i].load(std::memory_order_relaxed);

    const SupervisorMetrics& sup = segment.supervisor;
    s.crashCount = sup.crashCount.load();
    s.replacements = sup.replacements.load();
    s.shmLeaks = sup.shmLeaks.load();
    s.failovers = sup.failovers.load();
    s.fencings = sup.fencings.load();
    s.outputFailovers = sup.outputFailovers.load();
    s.outputCovers = sup.outputCovers.load();
    s.coldStarts = sup.coldStarts.load();
    s.deviceLosses = sup.deviceLosses.load();
    s.graphChangesDropped = sup.graphChangesDropped.load();
    s.stuckProcesses = sup.stuckProcesses.load();
    s.preparedUsed = sup.preparedUsed.load();
    s.preparedLost = sup.preparedLost.load();
    s.preparedPid = sup.preparedPid.load();
    s.waitingForDevice = sup.degradedReason.load() == static_cast<uint32_t>(DegradedReason::WaitingForDevice);
    s.spareReady = sup.spareReady.load() != 0;
    s.outputSpareReady = sup.outputSpareReady.load() != 0;
    s.backingOff = sup.backingOff.load() != 0;
    s.degradedReason = degradedName(sup.degradedReason.load());
    s.failoverMsLast = sup.failoverUsLast.load() / 1000.0;
    s.failoverMsMax = sup.failoverUsMax.load() / 1000.0;
    s.rebuildMsLast = sup.rebuildUsLast.load() / 1000.0;
    s.rebuildMsMax = sup.rebuildUsMax.load() / 1000.0;
    s.detectionMsLast = sup.detectionUsLast.load() / 1000.0;
    s.detectionMsMax = sup.detectionUsMax.load() / 1000.0;

    const OutputMetrics& out = segment.output;
    s.fromActive = out.fromActive.load();
    s.fromStandby = out.fromStandby.load();
    s.fromFenced = out.fromFenced.load();
    s.unfilled = out.unfilled.load();
    s.resyncs = out.resyncs.load();
    s.takeovers = out.takeovers.load();
    s.staleCancellations = out.staleCancellations.load();
    s.staleCancelledCycles = out.staleCancelledCycles.load();
    s.matched = out.matched.load();
    s.compared = out.compared.load();
    s.lagBlocks = out.lagBlocks.load();

    s.role = config.role == static_cast<uint32_t>(EngineRole::AudioHost) ? "audio" : "local";
    if (s.role == "audio") {
        readHosts(segment, s);
        s.processes.push_back(readProcess(segment.outputs[0], "output", 0, true, nowNs));
    } else {
        for (uint32_t w = 0; w < kWorkerSlots; ++w)
            s.processes.push_back(readProcess(segment.slots[w], "worker", w, false, nowNs));
    }
    if (s.layout == "relay" && s.role != "audio") {
        const uint32_t writer = out.writerSlot.load(std::memory_order_acquire);
        for (uint32_t o = 0; o < kOutputSlots; ++o)
            s.processes.push_back(readProcess(segment.outputs[o], "output", o, o == writer, nowNs));
    }

    // Parameters as the active worker renders them (its targets), else the state table.
    PublishedRender published;
    const uint32_t activeSlot = s.activeSlot % kWorkerSlots;
    const bool haveState = seqlockRead(segment.state[activeSlot].sequence, segment.state[activeSlot].words, published) &&
                           published.epoch == segment.slots[activeSlot].epoch.load(std::memory_order_acquire);
    const RenderState& state = published.state;
    auto param = [&](uint32_t index, const Ramp& ramp) {
        return haveState ? ramp.target : segment.params.entries[index].value.load(std::memory_order_relaxed);
    };
    s.masterGain = param(kParamMasterGain, state.master);
    for (uint32_t v = 0; v < s.voices; ++v) {
        s.voiceFreq.push_back(param(voiceFreqParam(v), state.voices[v].freq));
        s.voiceGain.push_back(param(voiceGainParam(v), state.voices[v].gain));
    }

    const ProcessStatus& activeProcess = s.role == "audio" ? s.processes[0] : s.processes[s.activeSlot];
    // Rendering: its callback ran within the last 100 ms (a few hundred periods would be an
    // outage anyone hears); on the audio host, the stage runs and a render host is in step.
    s.activeRendering = activeProcess.pid != 0 && activeProcess.heartbeatAgeMs >= 0 && activeProcess.heartbeatAgeMs < 100;
    if (s.role == "audio")
        s.activeRendering = s.activeRendering && std::any_of(s.hosts.begin(), s.hosts.end(), [](const HostStatus& host) {
                                return host.role == "active" && host.state == "in_step";
                            });
    return s;
}

Health healthOf(const StatusSnapshot& s, std::string& why) {
    if (!s.activeRendering) {
        why = "no active worker is rendering";
        return Health::Down;
    }
    // sustaind's loop ticks every 2 ms: a quarter of a second without it is a stopped or
    // wedged supervisor (the sound goes on, but nothing would be rebuilt).
    if (s.supervisorHeartbeatAgeMs < 0 || s.supervisorHeartbeatAgeMs > 250) {
        why = "sustaind does not respond (its loop has not run for " + std::to_string(static_cast<int>(s.supervisorHeartbeatAgeMs)) + " ms)";
        return Health::Degraded;
    }
    if (!s.degradedReason.empty()) {
        why = s.degradedReason;
        return Health::Degraded;
    }
    // The reader's own look: a spare whose callback stopped is no spare, whatever sustaind
    // last wrote.
    for (const ProcessStatus& p : s.processes) {
        if ((p.role == "standby" || p.role == "output-standby") && p.pid != 0 && p.state == "warm" &&
            p.heartbeatAgeMs > 100) {
            why = p.kind + " " + std::to_string(p.slot) + " (standby) has not run for " +
                  std::to_string(static_cast<int>(p.heartbeatAgeMs)) + " ms";
            return Health::Degraded;
        }
    }
    why.clear();
    return Health::Healthy;
}

}  // namespace sustain
