// A consistent-enough picture of a running engine, read from its shared memory read-only.
//
// The monitor maps the segment with PROT_READ: it can never disturb the audio or change
// state, and it works while sustaind is busy or failing over. Counters are monotonic and
// each has one writer, so reading them without locks gives values that are each correct,
// if not all from the same instant; percentiles are computed here, by the reader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shm/layout.h"
#include "shm/metrics.h"

namespace sustain {

/// Health as the exit code of sustain-status says it.
enum class Health : int { Healthy = 0, Degraded = 1, Down = 2 };


struct ProcessStatus {
    std::string kind;   // "worker" or "output"
    uint32_t slot = 0;
    int32_t pid = 0;
    std::string role;   // "active", "standby", "output" (playing), "output-standby", "none"
    std::string state;  // "starting", "warm", "active", "fenced", "dead", "empty"; "replacing" while no process is in the slot (pid 0, shown as null)
    uint64_t callbacks = 0;
    uint64_t handbacks = 0;  // direct layout: takeovers handed back because the active ran again
    uint64_t xruns = 0;
    uint64_t caughtUpBlocks = 0;  // relay: blocks rendered late for JACK cycles the worker was not run in
    double cpuLoad = 0;        // time in callback / period, smoothed (0..1)
    double cpuLoadPeak = 0;
    double heartbeatAgeMs = -1;  // since its last callback; -1: never
    std::string device;
};

/// A render host as the audio host sees it (docs/hosts.md).
struct HostStatus {
    uint32_t row = 0;
    std::string name, address;
    std::string role;   // "active" (its blocks are played), "standby", "none"
    std::string state;  // "joining", "in_step", "down"
    bool connected = false, portsWired = false;
    uint64_t blocks = 0, lateBlocks = 0, outOfStepBlocks = 0, played = 0, joins = 0, downs = 0, snapshotsSent = 0,
             commandsSent = 0, recoveredBlocks = 0;
    uint32_t latencyCycles = 0;
    double warmMsLast = 0, warmMsMax = 0;
};

struct StatusSnapshot {
    std::string instance;
    std::string role;  // "local", or "audio" for the audio host of render hosts
    uint64_t nowNs = 0;
    double uptimeS = 0;
    uint32_t sampleRate = 0, framesPerBuffer = 0, voices = 0;
    std::string layout;
    int32_t supervisorPid = 0;
    double supervisorHeartbeatAgeMs = -1;
    // OSC
    uint64_t received = 0, accepted = 0, applied = 0, rejected = 0, dropped = 0, coalesced = 0;
    uint64_t rejectedMalformed = 0, rejectedUnknownAddress = 0, rejectedBadType = 0, rejectedArgCount = 0,
             rejectedNotFinite = 0, rejectedOutOfRange = 0, rejectedOversize = 0;
    uint64_t kernelDrops = 0, ringCoalesced = 0, controlCoalesced = 0, callbackCoalesced = 0;
    uint64_t repliesSent = 0, subscribersDropped = 0, rejectedSender = 0;
    uint64_t receiveBatches = 0, workerWakes = 0;  // recvmmsg batches; wake bytes to the workers (both slots)
    uint64_t rejectedScheduleFull = 0, rejectedTooFarAhead = 0, rejectedSenderQuota = 0, tinyFlushed = 0;
    // clients that come and go (docs/clients.md)
    uint64_t subscribersNow = 0, surfacesNow = 0, leftUnsubscribed = 0, leftUnreachable = 0, leftLeaseExpired = 0,
             leftEvicted = 0, proofsAsked = 0, proofsFailed = 0, surfacesUnproven = 0, icmpErrors = 0;
    uint64_t tcpIdleClosed = 0, tcpEvicted = 0;
    bool tracing = false;
    uint64_t traced = 0, failRepliesSent = 0, timedCleared = 0, panics = 0, patternMessages = 0, patternTargets = 0;
    uint64_t surfaceIgnored = 0, labelsSent = 0;
    uint64_t tcpConnections = 0, tcpAccepted = 0, tcpRefused = 0, tcpClosedOnError = 0, tcpFramingErrors = 0,
             tcpRepliesDropped = 0;
    // timed bundles
    uint64_t timedScheduled = 0, timedApplied = 0, timedLate = 0, timedPending = 0, timedOverflow = 0;
    uint64_t timedLateFramesLast = 0;  // the active's last late timed command: frames after its frame
    uint64_t syncsAnswered = 0, syncsRefused = 0, lateNotifications = 0;
    Percentiles lateMs;           // lateness of late timed messages, upper edges of log2 bins, ms
    uint32_t playLatencyFrames = 0, reportedLatencyFrames = 0;
    bool frameClock = false;
    std::string frameClockSource;  // "jack", "callback"; "" before the first block
    double measuredRateHz = 0;     // frames per second of CLOCK_MONOTONIC, by the frame clock
    Percentiles latencySamples;  // receive -> applied, in samples (active worker)
    std::vector<uint64_t> latencyBins;  // a coarse histogram for the live view
    // supervisor
    uint64_t crashCount = 0, replacements = 0, shmLeaks = 0, failovers = 0, fencings = 0, outputFailovers = 0,
             coldStarts = 0, deviceLosses = 0, graphChangesDropped = 0, stuckProcesses = 0,
             preparedUsed = 0, preparedLost = 0, outputCovers = 0;
    int preparedPid = 0;  // a worker started ahead, waiting for a slot (0: none)
    bool waitingForDevice = false;
    bool spareReady = false, outputSpareReady = false, backingOff = false;
    std::string degradedReason;  // "" when none
    double failoverMsLast = 0, failoverMsMax = 0, rebuildMsLast = 0, rebuildMsMax = 0, detectionMsLast = 0,
           detectionMsMax = 0;
    // output stage (relay)
    uint64_t fromActive = 0, fromStandby = 0, fromFenced = 0, unfilled = 0, resyncs = 0, takeovers = 0, matched = 0, compared = 0, lagBlocks = 0;
    uint64_t staleCancellations = 0, staleCancelledCycles = 0;
    std::vector<ProcessStatus> processes;
    // render hosts (role "audio")
    std::vector<HostStatus> hosts;
    uint32_t hostPlayoutPeriods = 0;
    uint64_t hostsFromPreferred = 0, hostsFromOther = 0, hostsOutOfStepPlayed = 0, hostsUnfilled = 0,
             hostsCompared = 0, hostsMatched = 0, hostFailovers = 0, hostsSkippedCycles = 0;
    // parameters
    double masterGain = 0;
    std::vector<double> voiceFreq, voiceGain;
    uint32_t activeSlot = 0;
    bool activeRendering = false;
};

/// Reads everything from a mapped segment. Thread: any.  RT-safe: no (allocates strings).
StatusSnapshot takeSnapshot(const Segment& segment, uint64_t nowNs);


/// The engine's health and, when not healthy, why.
Health healthOf(const StatusSnapshot& snapshot, std::string& why);

}  // namespace sustain
