#include "tools/benchmark/metrics_reader.h"

#include <algorithm>
#include <cmath>

#include "shm/clock.h"
#include "shm/seqlock.h"

namespace sustain::bench {

namespace {

template <size_t N>
std::vector<uint64_t> copyBins(const std::atomic<uint64_t> (&bins)[N]) {
    std::vector<uint64_t> out(N);
    for (size_t i = 0; i < N; ++i) out[i] = bins[i].load(std::memory_order_relaxed);
    return out;
}

nlohmann::json sparse(const std::vector<uint64_t>& bins) {
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < bins.size(); ++i)
        if (bins[i] != 0) out.push_back({i, bins[i]});
    return out;
}

std::vector<uint64_t> dense(const nlohmann::json& pairs, size_t size) {
    std::vector<uint64_t> out(size, 0);
    for (const auto& pair : pairs) {
        const auto bin = pair.at(0).get<size_t>();
        if (bin < size) out[bin] = pair.at(1).get<uint64_t>();
    }
    return out;
}

// A counter difference that says so when the counter went backwards (a restarted engine).
int64_t diff(uint64_t now, uint64_t before) { return static_cast<int64_t>(now - before); }

std::vector<uint64_t> diffBins(const std::vector<uint64_t>& now, const std::vector<uint64_t>& before) {
    std::vector<uint64_t> out(now.size(), 0);
    for (size_t i = 0; i < now.size(); ++i) out[i] = i < before.size() && before[i] <= now[i] ? now[i] - before[i] : now[i];
    return out;
}

nlohmann::json latencyJson(const std::vector<uint64_t>& bins, uint32_t sampleRate) {
    const Percentiles p = percentiles(bins);
    const double usPerSample = sampleRate != 0 ? 1e6 / sampleRate : 0.0;
    auto us = [&](uint64_t samples) { return std::round(static_cast<double>(samples) * usPerSample * 10.0) / 10.0; };
    return {{"count", p.count},
            {"p50_samples", p.p50},
            {"p95_samples", p.p95},
            {"p99_samples", p.p99},
            {"max_samples", p.max},
            {"mean_samples", p.mean},
            {"overflow", p.overflow},
            {"p50_us", us(p.p50)},
            {"p95_us", us(p.p95)},
            {"p99_us", us(p.p99)},
            {"max_us", us(p.max)},
            {"mean_us", p.mean * usPerSample}};
}

nlohmann::json drainJson(const std::vector<uint64_t>& bins) {
    const Percentiles p = percentiles(bins);
    return {{"count", p.count}, {"p50_us", p.p50}, {"p95_us", p.p95}, {"p99_us", p.p99},
            {"max_us", p.max},  {"mean_us", p.mean}, {"overflow", p.overflow}};
}

}  // namespace

uint64_t quantileBin(std::span<const uint64_t> bins, double q) {
    uint64_t total = 0;
    for (uint64_t count : bins) total += count;
    if (total == 0) return 0;
    // Nearest rank: the smallest bin whose cumulative count reaches ceil(q * total).
    const auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(total))));
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bins.size(); ++i) {
        cumulative += bins[i];
        if (cumulative >= rank) return i;
    }
    return bins.size() - 1;
}

Percentiles percentiles(std::span<const uint64_t> bins) {
    Percentiles p;
    double sum = 0.0;
    for (size_t i = 0; i < bins.size(); ++i) {
        p.count += bins[i];
        sum += static_cast<double>(i) * static_cast<double>(bins[i]);
        if (bins[i] != 0) p.max = i;
    }
    if (p.count == 0) return p;
    p.overflow = bins.empty() ? 0 : bins.back();
    p.p50 = quantileBin(bins, 0.50);
    p.p95 = quantileBin(bins, 0.95);
    p.p99 = quantileBin(bins, 0.99);
    p.mean = sum / static_cast<double>(p.count);
    return p;
}

MetricsSnapshot readSnapshot(const Segment& segment, std::string_view instance) {
    constexpr auto relaxed = std::memory_order_relaxed;
    MetricsSnapshot s;
    s.instance = std::string(instance);
    s.takenNs = monotonicNs();
    s.sampleRate = segment.config.sampleRate;
    s.framesPerBuffer = segment.config.framesPerBuffer;
    s.voices = segment.config.voices;
    s.ready = segment.control.ready.load(std::memory_order_acquire);
    s.epoch = segment.control.epoch.load(std::memory_order_acquire);

    // Worker side first, then the ring, then the OSC side: a command counted downstream
    // has then always been counted upstream too, so a snapshot never shows more applied
    // than accepted (each writer counts before it hands the command on).
    const WorkerMetrics& w = segment.workers[0];
    s.applied = w.applied.load(relaxed);
    s.controlCoalesced = w.controlCoalesced.load(relaxed);
    s.callbackCoalesced = w.callbackCoalesced.load(relaxed);
    s.drained = w.drained.load(relaxed);
    s.staleEpochSkips = w.staleEpochSkips.load(relaxed);
    s.latencyOverflow = w.latencyOverflow.load(relaxed);
    s.latencySum = w.latencySum.load(relaxed);
    s.latencyBins = copyBins(w.latencyBins);
    s.drainBins = copyBins(w.drainBins);

    const RingIndices& ring = segment.rings[0].indices;
    s.ringReadIndex = ring.readIndex.load(std::memory_order_acquire);
    s.ringWriteIndex = ring.writeIndex.load(std::memory_order_acquire);
    s.ringRejectedFull = ring.rejectedFull.load(relaxed);
    s.ringWakesSent = ring.wakesSent.load(relaxed);

    const OscMetrics& o = segment.osc;
    s.received = o.received.load(relaxed);
    s.accepted = o.accepted.load(relaxed);
    s.rejected = o.rejected.load(relaxed);
    s.kernelDrops = o.kernelDrops.load(relaxed);
    s.ringCoalesced = o.ringCoalesced.load(relaxed);
    s.datagrams = o.datagrams.load(relaxed);
    s.receiveBufferBytes = o.receiveBufferBytes.load(relaxed);

    const WorkerSlot& slot = segment.slots[0];
    s.workerPid = slot.pid.load(relaxed);
    s.workerState = slot.state.load(relaxed);
    s.callbacks = slot.callbacks.load(relaxed);
    s.xruns = slot.xruns.load(relaxed);
    s.clippedSamples = slot.clippedSamples.load(relaxed);
    s.rtLogDropped = slot.rtLogDropped.load(relaxed);
    s.loadPermille = slot.loadPermille.load(relaxed);
    s.loadPeakPermille = slot.loadPeakPermille.load(relaxed);

    s.crashCount = segment.supervisor.crashCount.load(relaxed);
    s.replacements = segment.supervisor.replacements.load(relaxed);

    s.params.resize(kParamCount);
    s.paramVersions.resize(kParamCount);
    for (uint32_t param = 0; param < kParamCount; ++param) {
        s.paramVersions[param] = segment.params.entries[param].version.load(std::memory_order_acquire);
        s.params[param] = segment.params.entries[param].value.load(relaxed);
    }

    PublishedRender published{};
    s.renderedValid = seqlockRead(segment.state[0].sequence, segment.state[0].words, published);
    const RenderState& state = published.state;
    if (s.renderedValid) {
        s.renderedTargets.resize(kParamCount);
        s.renderedTargets[kParamMasterGain] = state.master.target;
        for (uint32_t voice = 0; voice < kMaxVoices; ++voice) {
            s.renderedTargets[voiceFreqParam(voice)] = state.voices[voice].freq.target;
            s.renderedTargets[voiceGainParam(voice)] = state.voices[voice].gain.target;
        }
    }
    return s;
}

bool sameProgress(const MetricsSnapshot& a, const MetricsSnapshot& b) {
    return a.datagrams == b.datagrams && a.kernelDrops == b.kernelDrops && a.received == b.received &&
           a.ringWriteIndex == b.ringWriteIndex && a.ringReadIndex == b.ringReadIndex && a.drained == b.drained &&
           a.applied == b.applied && a.controlCoalesced == b.controlCoalesced &&
           a.callbackCoalesced == b.callbackCoalesced && a.ringCoalesced == b.ringCoalesced &&
           b.ringWriteIndex == b.ringReadIndex;
}

nlohmann::json toJson(const MetricsSnapshot& s, const MetricsSnapshot* since) {
    nlohmann::json out;
    out["instance"] = s.instance;
    out["taken_ns"] = s.takenNs;
    out["sample_rate"] = s.sampleRate;
    out["frames_per_buffer"] = s.framesPerBuffer;
    out["voices"] = s.voices;
    out["ready"] = s.ready;
    out["epoch"] = s.epoch;
    out["osc"] = {{"received", s.received},           {"accepted", s.accepted},
                  {"rejected", s.rejected},           {"kernelDrops", s.kernelDrops},
                  {"ringCoalesced", s.ringCoalesced}, {"datagrams", s.datagrams},
                  {"receiveBufferBytes", s.receiveBufferBytes}};
    out["ring"] = {{"writeIndex", s.ringWriteIndex},
                   {"readIndex", s.ringReadIndex},
                   {"rejectedFull", s.ringRejectedFull},
                   {"wakesSent", s.ringWakesSent}};
    out["worker"] = {{"applied", s.applied},
                     {"controlCoalesced", s.controlCoalesced},
                     {"callbackCoalesced", s.callbackCoalesced},
                     {"drained", s.drained},
                     {"staleEpochSkips", s.staleEpochSkips},
                     {"latencyOverflow", s.latencyOverflow},
                     {"latencySum", s.latencySum},
                     {"pid", s.workerPid},
                     {"state", s.workerState},
                     {"callbacks", s.callbacks},
                     {"xruns", s.xruns},
                     {"loadPermille", s.loadPermille},
                     {"loadPeakPermille", s.loadPeakPermille},
                     {"clippedSamples", s.clippedSamples},
                     {"rtLogDropped", s.rtLogDropped}};
    out["supervisor"] = {{"crashCount", s.crashCount}, {"replacements", s.replacements}};
    out["latency"] = latencyJson(s.latencyBins, s.sampleRate);
    out["drain"] = drainJson(s.drainBins);
    out["latency_bins"] = sparse(s.latencyBins);
    out["drain_bins"] = sparse(s.drainBins);
    out["params"] = s.params;
    out["param_versions"] = s.paramVersions;
    out["rendered_valid"] = s.renderedValid;
    out["rendered_targets"] = s.renderedTargets;

    if (since != nullptr) {
        const MetricsSnapshot& b = *since;
        nlohmann::json delta;
        delta["seconds"] = static_cast<double>(s.takenNs - b.takenNs) / 1e9;
        delta["osc"] = {{"received", diff(s.received, b.received)},
                        {"accepted", diff(s.accepted, b.accepted)},
                        {"rejected", diff(s.rejected, b.rejected)},
                        {"kernelDrops", diff(s.kernelDrops, b.kernelDrops)},
                        {"ringCoalesced", diff(s.ringCoalesced, b.ringCoalesced)},
                        {"datagrams", diff(s.datagrams, b.datagrams)}};
        delta["ring"] = {{"pushed", diff(s.ringWriteIndex, b.ringWriteIndex)},
                         {"taken", diff(s.ringReadIndex, b.ringReadIndex)},
                         {"rejectedFull", diff(s.ringRejectedFull, b.ringRejectedFull)},
                         {"wakesSent", diff(s.ringWakesSent, b.ringWakesSent)}};
        delta["worker"] = {{"applied", diff(s.applied, b.applied)},
                           {"controlCoalesced", diff(s.controlCoalesced, b.controlCoalesced)},
                           {"callbackCoalesced", diff(s.callbackCoalesced, b.callbackCoalesced)},
                           {"drained", diff(s.drained, b.drained)},
                           {"staleEpochSkips", diff(s.staleEpochSkips, b.staleEpochSkips)},
                           {"latencyOverflow", diff(s.latencyOverflow, b.latencyOverflow)},
                           {"callbacks", diff(s.callbacks, b.callbacks)},
                           {"xruns", diff(s.xruns, b.xruns)},
                           {"clippedSamples", diff(s.clippedSamples, b.clippedSamples)},
                           {"same_pid", s.workerPid == b.workerPid}};
        const std::vector<uint64_t> latency = diffBins(s.latencyBins, b.latencyBins);
        const std::vector<uint64_t> drain = diffBins(s.drainBins, b.drainBins);
        delta["latency"] = latencyJson(latency, s.sampleRate);
        delta["drain"] = drainJson(drain);
        delta["latency_bins"] = sparse(latency);
        delta["drain_bins"] = sparse(drain);
        out["delta"] = std::move(delta);
    }
    return out;
}

MetricsSnapshot fromJson(const nlohmann::json& d) {
    MetricsSnapshot s;
    s.instance = d.at("instance").get<std::string>();
    s.takenNs = d.at("taken_ns").get<uint64_t>();
    s.sampleRate = d.at("sample_rate").get<uint32_t>();
    s.framesPerBuffer = d.at("frames_per_buffer").get<uint32_t>();
    s.voices = d.at("voices").get<uint32_t>();
    s.ready = d.at("ready").get<uint32_t>();
    s.epoch = d.at("epoch").get<uint64_t>();
    const auto& o = d.at("osc");
    s.received = o.at("received").get<uint64_t>();
    s.accepted = o.at("accepted").get<uint64_t>();
    s.rejected = o.at("rejected").get<uint64_t>();
    s.kernelDrops = o.at("kernelDrops").get<uint64_t>();
    s.ringCoalesced = o.at("ringCoalesced").get<uint64_t>();
    s.datagrams = o.at("datagrams").get<uint64_t>();
    s.receiveBufferBytes = o.at("receiveBufferBytes").get<uint64_t>();
    const auto& r = d.at("ring");
    s.ringWriteIndex = r.at("writeIndex").get<uint64_t>();
    s.ringReadIndex = r.at("readIndex").get<uint64_t>();
    s.ringRejectedFull = r.at("rejectedFull").get<uint64_t>();
    s.ringWakesSent = r.at("wakesSent").get<uint64_t>();
    const auto& w = d.at("worker");
    s.applied = w.at("applied").get<uint64_t>();
    s.controlCoalesced = w.at("controlCoalesced").get<uint64_t>();
    s.drained = w.at("drained").get<uint64_t>();
    s.staleEpochSkips = w.at("staleEpochSkips").get<uint64_t>();
    s.latencyOverflow = w.at("latencyOverflow").get<uint64_t>();
    s.latencySum = w.at("latencySum").get<uint64_t>();
    s.workerPid = w.at("pid").get<int32_t>();
    s.workerState = w.at("state").get<uint32_t>();
    s.callbacks = w.at("callbacks").get<uint64_t>();
    s.xruns = w.at("xruns").get<uint64_t>();
    s.loadPermille = w.at("loadPermille").get<uint32_t>();
    s.loadPeakPermille = w.at("loadPeakPermille").get<uint32_t>();
    s.clippedSamples = w.at("clippedSamples").get<uint64_t>();
    s.rtLogDropped = w.at("rtLogDropped").get<uint64_t>();
    const auto& sup = d.at("supervisor");
    s.crashCount = sup.at("crashCount").get<uint64_t>();
    s.replacements = sup.at("replacements").get<uint64_t>();
    s.latencyBins = dense(d.at("latency_bins"), kLatencyBins + 1);
    s.drainBins = dense(d.at("drain_bins"), kDrainBins + 1);
    s.params = d.at("params").get<std::vector<double>>();
    s.paramVersions = d.at("param_versions").get<std::vector<uint64_t>>();
    s.renderedValid = d.at("rendered_valid").get<bool>();
    s.renderedTargets = d.at("rendered_targets").get<std::vector<double>>();
    return s;
}

}  // namespace sustain::bench
