// Reads an engine's counters and histograms from its shared memory, for the benchmark.
//
// A snapshot is a plain copy of what the OSC thread, worker slot 0 and the supervisor
// published (see shm/layout.h for each field's writer); it is taken through a read-only
// mapping, so the benchmark cannot disturb the engine it measures. Percentiles come from
// the unit-width histograms: latencyBins (1 sample per bin, receive→applied in the
// callback) and drainBins (1 us per bin, ring push→control-thread drain).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shm/layout.h"

namespace sustain::bench {

/// Percentiles of a histogram whose bin b holds values in [b, b+1) units; the last bin
/// holds everything at or beyond its index (overflow). Values are bins' lower edges
/// (nearest rank: the smallest bin whose cumulative count reaches q * count).
struct Percentiles {
    uint64_t count = 0;
    uint64_t p50 = 0;
    uint64_t p95 = 0;
    uint64_t p99 = 0;
    uint64_t max = 0;
    uint64_t overflow = 0;   // samples in the overflow bin; max is then a lower bound
    double mean = 0.0;       // of the bins' lower edges
};

/// Computes the percentiles of `bins` (the last element is the overflow bin).
/// Thread: any.  RT-safe: no (not needed).
Percentiles percentiles(std::span<const uint64_t> bins);

/// The value at quantile q (0 < q <= 1) by nearest rank; 0 for an empty histogram.
uint64_t quantileBin(std::span<const uint64_t> bins, double q);

/// Everything the benchmark reads, as plain numbers.
struct MetricsSnapshot {
    std::string instance;
    uint64_t takenNs = 0;            // CLOCK_MONOTONIC
    uint32_t sampleRate = 0;
    uint32_t framesPerBuffer = 0;
    uint32_t voices = 0;
    uint32_t ready = 0;
    uint64_t epoch = 0;

    // OSC thread (OscMetrics).
    uint64_t received = 0, accepted = 0, rejected = 0, kernelDrops = 0, ringCoalesced = 0, datagrams = 0;
    uint64_t receiveBufferBytes = 0;

    // Worker slot 0's ring (RingIndices): writeIndex counts every record pushed, readIndex every one taken.
    uint64_t ringWriteIndex = 0, ringReadIndex = 0, ringRejectedFull = 0, ringWakesSent = 0;

    // Worker slot 0 (WorkerMetrics and WorkerSlot).
    uint64_t applied = 0, controlCoalesced = 0, callbackCoalesced = 0, drained = 0, staleEpochSkips = 0, latencyOverflow = 0;
    uint64_t latencySum = 0;
    int32_t workerPid = 0;
    uint32_t workerState = 0;
    uint64_t callbacks = 0, xruns = 0, clippedSamples = 0, rtLogDropped = 0;
    uint32_t loadPermille = 0, loadPeakPermille = 0;

    // Supervisor.
    uint64_t crashCount = 0, replacements = 0;

    std::vector<uint64_t> latencyBins;  // kLatencyBins + 1 (overflow)
    std::vector<uint64_t> drainBins;    // kDrainBins + 1 (overflow)
    std::vector<double> params;         // the state table, kParamCount values
    std::vector<uint64_t> paramVersions;
    bool renderedValid = false;         // false if the seqlock read kept failing
    std::vector<double> renderedTargets;  // worker 0's published ramp targets, same indexing as params
};

/// Copies the counters of a mapped segment (relaxed loads: each counter is exact, the set
/// is not one instant). Thread: any non-RT thread.  RT-safe: no (allocates).
MetricsSnapshot readSnapshot(const Segment& segment, std::string_view instance);

/// True when two snapshots show the same progress: nothing arrived, was drained or applied
/// in between, and worker 0's ring is empty. Used to wait until a flood is fully processed.
bool sameProgress(const MetricsSnapshot& a, const MetricsSnapshot& b);

/// The snapshot as JSON (counters, sparse histograms as [[bin, count], ...], percentiles,
/// parameter values). With `since`, adds "delta": the counters and percentiles of what
/// happened between the two snapshots.
nlohmann::json toJson(const MetricsSnapshot& snapshot, const MetricsSnapshot* since = nullptr);

/// Reads back what toJson() wrote (without the derived fields); throws nlohmann::json's
/// exceptions on a malformed document.
MetricsSnapshot fromJson(const nlohmann::json& document);

}  // namespace sustain::bench
