#include "tools/status/status_format.h"

#include <cstdio>

namespace sustain {

const char* healthWord(Health health) {
    switch (health) {
        case Health::Healthy: return "healthy";
        case Health::Degraded: return "degraded";
        case Health::Down: return "down";
    }
    return "unknown";
}

/// The audio host's render hosts, a row each (docs/hosts.md); empty on a single machine.
nlohmann::json hostsJson(const StatusSnapshot& s) {
    nlohmann::json rows = nlohmann::json::array();
    for (const HostStatus& h : s.hosts)
        rows.push_back({{"row", h.row},
                        {"name", h.name},
                        {"address", h.address},
                        {"role", h.role},
                        {"state", h.state},
                        {"connected", h.connected},
                        {"ports_wired", h.portsWired},
                        {"blocks", h.blocks},
                        {"late_blocks", h.lateBlocks},
                        {"out_of_step_blocks", h.outOfStepBlocks},
                        {"recovered_blocks", h.recoveredBlocks},
                        {"played", h.played},
                        {"latency_cycles", h.latencyCycles},
                        {"joins", h.joins},
                        {"downs", h.downs},
                        {"snapshots_sent", h.snapshotsSent},
                        {"commands_sent", h.commandsSent},
                        {"warm_again_ms", {{"last", h.warmMsLast}, {"max", h.warmMsMax}}}});
    return rows;
}

nlohmann::json statusJson(const StatusSnapshot& s, Health health, const std::string& why) {
    using nlohmann::json;
    const double msPerSample = s.sampleRate ? 1000.0 / s.sampleRate : 0.0;
    json workers = json::array();
    for (const ProcessStatus& p : s.processes) {
        workers.push_back({{"slot", p.slot},
                           {"kind", p.kind},
                           {"pid", p.pid == 0 ? json(nullptr) : json(p.pid)},
                           {"role", p.role},
                           {"handbacks", p.handbacks},
                           {"state", p.state},
                           {"callbacks", p.callbacks},
                           {"xruns", p.xruns},
                           {"caught_up_blocks", p.caughtUpBlocks},
                           {"cpu_load", p.cpuLoad},
                           {"cpu_load_peak", p.cpuLoadPeak},
                           {"heartbeat_age_ms", p.heartbeatAgeMs < 0 ? json(nullptr) : json(p.heartbeatAgeMs)},
                           {"device", p.device}});
    }
    json voices = json::array();
    for (size_t v = 0; v < s.voiceFreq.size(); ++v) voices.push_back({{"voice", v}, {"freq", s.voiceFreq[v]}, {"gain", s.voiceGain[v]}});
    return {
        {"instance", s.instance},
        {"health", healthWord(health)},
        {"health_reason", why},
        {"uptime_s", s.uptimeS},
        {"sample_rate", s.sampleRate},
        {"frames_per_buffer", s.framesPerBuffer},
        {"layout", s.layout},
        {"osc",
         {{"received", s.received},
          {"accepted", s.accepted},
          {"applied", s.applied},
          {"rejected", s.rejected},
          {"dropped", s.dropped},
          {"coalesced", s.coalesced},
          {"rejected_by_reason",
           {{"malformed", s.rejectedMalformed},
            {"unknown_address", s.rejectedUnknownAddress},
            {"bad_type", s.rejectedBadType},
            {"arg_count", s.rejectedArgCount},
            {"not_finite", s.rejectedNotFinite},
            {"out_of_range", s.rejectedOutOfRange},
            {"oversize", s.rejectedOversize},
            {"sender_not_allowed", s.rejectedSender},
            {"schedule_full", s.rejectedScheduleFull},
            {"too_far_ahead", s.rejectedTooFarAhead},
            {"sender_quota", s.rejectedSenderQuota}}},
          {"dropped_by_queue", {{"kernel_receive_buffer", s.kernelDrops}}},
          {"receive_batches", s.receiveBatches},
          {"worker_wakes", s.workerWakes},
          {"replies_sent", s.repliesSent},
          {"tcp",
           {{"connections", s.tcpConnections},
            {"accepted", s.tcpAccepted},
            {"refused", s.tcpRefused},
            {"closed_on_error", s.tcpClosedOnError},
            {"framing_errors", s.tcpFramingErrors},
            {"replies_dropped", s.tcpRepliesDropped},
            {"idle_closed", s.tcpIdleClosed},
            {"evicted", s.tcpEvicted}}},
          {"subscribers_dropped", s.subscribersDropped},
          {"clients",
           {{"subscribers", s.subscribersNow},
            {"surfaces", s.surfacesNow},
            {"left_by_reason",
             {{"unsubscribed", s.leftUnsubscribed},
              {"unreachable", s.leftUnreachable},
              {"lease_expired", s.leftLeaseExpired},
              {"evicted", s.leftEvicted},
              {"send_failed", s.subscribersDropped}}},
            {"proofs_asked", s.proofsAsked},
            {"proofs_failed", s.proofsFailed},
            {"surfaces_unproven", s.surfacesUnproven},
            {"icmp_errors", s.icmpErrors}}},
          {"tiny_flushed", s.tinyFlushed},
          {"tracing", s.tracing},
          {"traced", s.traced},
          {"fail_replies_sent", s.failRepliesSent},
          {"panics", s.panics},
          {"patterns", {{"messages", s.patternMessages}, {"targets", s.patternTargets}}},
          {"surfaces", {{"ignored", s.surfaceIgnored}, {"labels_sent", s.labelsSent}}},
          {"coalesced_by_stage", {{"ring_full", s.ringCoalesced}, {"control_thread", s.controlCoalesced}, {"callback", s.callbackCoalesced}}}}},
        {"timing",
         {{"scheduled", s.timedScheduled},
          {"applied_on_time", s.timedApplied},
          {"late", s.timedLate},
          {"late_frames_last", s.timedLateFramesLast},
          {"pending", s.timedPending},
          {"overflow", s.timedOverflow},
          {"cleared", s.timedCleared},
          {"late_ms", {{"p50", s.lateMs.p50}, {"p99", s.lateMs.p99}, {"max", s.lateMs.max}, {"count", s.lateMs.count}}},
          {"late_notifications", s.lateNotifications},
          {"syncs_answered", s.syncsAnswered},
          {"syncs_refused", s.syncsRefused},
          {"frame_clock", s.frameClock},
          {"frame_clock_source", s.frameClockSource},
          {"measured_rate_hz", s.measuredRateHz},
          {"output_latency_frames", s.reportedLatencyFrames},
          {"play_latency_frames", s.playLatencyFrames}}},
        {"latency_samples",
         {{"p50", s.latencySamples.p50}, {"p95", s.latencySamples.p95}, {"p99", s.latencySamples.p99}, {"max", s.latencySamples.max}, {"count", s.latencySamples.count}}},
        {"latency_ms",
         {{"p50", s.latencySamples.p50 * msPerSample}, {"p95", s.latencySamples.p95 * msPerSample}, {"p99", s.latencySamples.p99 * msPerSample}, {"max", s.latencySamples.max * msPerSample}}},
        {"supervisor",
         {{"pid", s.supervisorPid},
          {"heartbeat_age_ms", s.supervisorHeartbeatAgeMs < 0 ? json(nullptr) : json(s.supervisorHeartbeatAgeMs)},
          {"crash_count", s.crashCount},
          {"replacements", s.replacements},
          {"failovers", s.failovers},
          {"fencings", s.fencings},
          {"output_failovers", s.outputFailovers},
          {"output_covers", s.outputCovers},
          {"cold_starts", s.coldStarts},
          {"device_losses", s.deviceLosses},
          {"graph_changes_dropped", s.graphChangesDropped},
          {"stuck_processes", s.stuckProcesses},
          {"prepared_worker_pid", s.preparedPid},
          {"prepared_used", s.preparedUsed},
          {"prepared_lost", s.preparedLost},
          {"waiting_for_device", s.waitingForDevice},
          {"spare_ready", s.spareReady},
          {"output_spare_ready", s.outputSpareReady},
          {"backing_off", s.backingOff},
          {"degraded_reason", s.degradedReason},
          {"detection_ms", {{"last", s.detectionMsLast}, {"max", s.detectionMsMax}}},
          {"failover_time_ms", {{"last", s.failoverMsLast}, {"max", s.failoverMsMax}}},
          {"rebuild_time_ms", {{"last", s.rebuildMsLast}, {"max", s.rebuildMsMax}}},
          {"shm_leaks", s.shmLeaks}}},
        {"output",
         {{"blocks_from_active", s.fromActive},
          {"blocks_from_standby", s.fromStandby},
          {"blocks_from_fenced", s.fromFenced},
          {"unfilled_blocks", s.unfilled},
          {"resyncs", s.resyncs},
          {"takeovers", s.takeovers},
          {"stale_cancellations", s.staleCancellations},
          {"stale_cancelled_cycles", s.staleCancelledCycles},
          {"standby_blocks_compared", s.compared},
          {"standby_blocks_identical", s.matched},
          {"extra_latency_periods", s.lagBlocks}}},
        {"workers", workers},
        {"role", s.role},
        {"hosts", hostsJson(s)},
        {"host_output",
         {{"playout_periods", s.hostPlayoutPeriods},
          {"from_active", s.hostsFromPreferred},
          {"from_standby", s.hostsFromOther},
          {"out_of_step_played", s.hostsOutOfStepPlayed},
          {"unfilled_blocks", s.hostsUnfilled},
          {"blocks_compared", s.hostsCompared},
          {"blocks_identical", s.hostsMatched},
          {"failovers", s.hostFailovers},
          {"skipped_cycles", s.hostsSkippedCycles}}},
        {"params", {{"master_gain", s.masterGain}, {"voices", voices}}},
    };
}

std::string statusText(const StatusSnapshot& s, Health health, const std::string& why) {
    std::string out;
    char line[256];
    auto add = [&](const char* format, auto... args) {
        std::snprintf(line, sizeof line, format, args...);
        out += line;
    };
    add("sustain \"%s\": %s%s%s\n", s.instance.c_str(), healthWord(health), why.empty() ? "" : " — ", why.c_str());
    add("uptime %.0f s, %u Hz, %u frames, %s layout, sustaind pid %d\n", s.uptimeS, s.sampleRate, s.framesPerBuffer,
        s.layout.c_str(), s.supervisorPid);
    for (const ProcessStatus& p : s.processes)
        add("  %-6s %u  pid %-7s %-15s %-9s load %5.1f %%  xruns %-4llu heartbeat %s\n", p.kind.c_str(), p.slot,
            p.pid == 0 ? "-" : std::to_string(p.pid).c_str(),
            p.role.c_str(), p.state.c_str(), p.cpuLoad * 100.0, static_cast<unsigned long long>(p.xruns),
            p.heartbeatAgeMs < 0 ? "never" : (std::to_string(static_cast<int>(p.heartbeatAgeMs)) + " ms ago").c_str());
    for (const HostStatus& h : s.hosts)
        add("  host %u  %-12s %-20s %-8s %-8s blocks %-9llu late %-6llu latency %u cycles%s\n", h.row, h.name.c_str(),
            h.address.c_str(), h.role.c_str(), h.state.c_str(), static_cast<unsigned long long>(h.blocks),
            static_cast<unsigned long long>(h.lateBlocks), h.latencyCycles, h.connected ? "" : "  (link closed)");
    add("supervisor: crashes %llu, replacements %llu, spare %s, failover %.3f ms (max %.3f), rebuild %.1f ms (max %.1f), shm leaks %llu\n",
        static_cast<unsigned long long>(s.crashCount), static_cast<unsigned long long>(s.replacements),
        s.spareReady ? "ready" : "NOT ready", s.failoverMsLast, s.failoverMsMax, s.rebuildMsLast, s.rebuildMsMax,
        static_cast<unsigned long long>(s.shmLeaks));
    add("osc: received %llu, applied %llu, rejected %llu, dropped %llu, coalesced %llu\n",
        static_cast<unsigned long long>(s.received), static_cast<unsigned long long>(s.applied),
        static_cast<unsigned long long>(s.rejected), static_cast<unsigned long long>(s.dropped),
        static_cast<unsigned long long>(s.coalesced));
    const double ms = s.sampleRate ? 1000.0 / s.sampleRate : 0.0;
    add("latency received -> applied: p50 %.0f, p95 %.0f, p99 %.0f, max %.0f samples (p99 %.2f ms)\n", s.latencySamples.p50,
        s.latencySamples.p95, s.latencySamples.p99, s.latencySamples.max, s.latencySamples.p99 * ms);
    add("params: master gain %.3f\n", s.masterGain);
    for (size_t v = 0; v < s.voiceFreq.size(); ++v) add("  voice %zu: %.2f Hz, gain %.3f\n", v, s.voiceFreq[v], s.voiceGain[v]);
    return out;
}

}  // namespace sustain
