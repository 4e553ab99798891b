// The shared-memory layout: the contract between sustaind, sustain-worker and the tools.
//
// This header is the single source of truth for everything two processes share. Rules:
// - Offsets only, never pointers: every process maps the segment at another address.
// - Fixed-width types; every field two processes touch is a lock-free std::atomic and
//   names its one writer. Writers publish with release, readers read with acquire.
// - Changing any struct here bumps kLayoutVersion; tests/unit/test_layout.cpp pins the
//   sizes and offsets so that a change without a bump fails the build's tests.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace sustain {

inline constexpr uint32_t kLayoutMagic = 0x53555354;  // "SUST"
inline constexpr uint32_t kLayoutVersion = 19;

inline constexpr uint32_t kMaxVoices = 16;
inline constexpr uint32_t kWorkerSlots = 2;            // active + standby
inline constexpr uint32_t kOutputSlots = 2;            // relay layout: active + standby output stage
inline constexpr uint32_t kAudioRingBlocks = 16;       // per worker; blocks are indexed by number % 16
inline constexpr uint32_t kMaxRelayFrames = 1024;      // largest period the relay layout carries
inline constexpr uint32_t kAudioChannels = 2;
inline constexpr uint32_t kCommandRingCapacity = 8192; // per worker; power of two
inline constexpr uint32_t kLatencyBins = 4096;         // 1 sample per bin, + overflow bin
inline constexpr uint32_t kDrainBins = 4096;           // 1 us per bin, + overflow bin
inline constexpr uint32_t kRegistryEntries = 16;
inline constexpr uint32_t kInstanceNameMax = 32;       // without the terminating NUL
inline constexpr uint32_t kMaxTimedEvents = 1024;      // timed bundle messages waiting for their time, engine-wide
inline constexpr uint32_t kLateBins = 24;              // lateness of late bundles: bin b holds [2^(b-1), 2^b) ms
inline constexpr uint32_t kRenderHostSlots = 2;        // audio host role: render hosts (active + standby; docs/hosts.md)

static_assert((kCommandRingCapacity & (kCommandRingCapacity - 1)) == 0);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);
static_assert(std::atomic<double>::is_always_lock_free);

// ---- Parameters -------------------------------------------------------------------------

/// Parameter index in the state table and in Command::param:
/// 0 is the master gain; voice v has its frequency at 1 + 2v and its gain at 2 + 2v.
inline constexpr uint32_t kParamMasterGain = 0;
inline constexpr uint32_t kParamCount = 1 + 2 * kMaxVoices;
constexpr uint32_t voiceFreqParam(uint32_t voice) { return 1 + 2 * voice; }
constexpr uint32_t voiceGainParam(uint32_t voice) { return 2 + 2 * voice; }
constexpr bool isVoiceFreqParam(uint32_t param) { return param != 0 && (param % 2) == 1; }
constexpr uint32_t voiceOfParam(uint32_t param) { return (param - 1) / 2; }

/// What sustaind seeds the state table with: voice 0 sounds at 440 Hz, the other voices
/// are silent at its harmonics, and the master gain is 0 (or --gain) so that the engine
/// never starts with a blast.
constexpr double defaultParamValue(uint32_t param, double masterGain) {
    if (param == kParamMasterGain) return masterGain;
    const uint32_t voice = voiceOfParam(param);
    if (isVoiceFreqParam(param)) return 440.0 * (voice + 1);
    return voice == 0 ? 1.0 : 0.0;
}

/// One parameter change on its way from the OSC thread to a worker's callback.
/// A fixed-size POD: it is copied through the shared command rings.
struct Command {
    uint64_t sequence;   // per instance, from the OSC thread; orders commands
    uint64_t receiveNs;  // CLOCK_MONOTONIC when the datagram was received
    uint64_t pushNs;     // CLOCK_MONOTONIC when pushed into the worker's ring
    uint64_t dueFrame;   // kCommandFlagTimed: the frame (FrameClock numbering) it applies at
    double value;        // validated: finite and within the parameter's range
    uint16_t param;      // see kParamMasterGain, voiceFreqParam(), voiceGainParam()
    uint16_t flags;      // kCommandFlag*
    uint32_t reserved;
};
inline constexpr uint16_t kCommandFlagRefresh = 1;  // re-sent from the state table after a full ring
inline constexpr uint16_t kCommandFlagTimed = 2;    // from a timed bundle: applies at dueFrame, to the sample
static_assert(std::is_trivially_copyable_v<Command>);
static_assert(sizeof(Command) == 48);

// ---- Regions ----------------------------------------------------------------------------

/// Written once by sustaind before it sets `magic`; read-only afterwards. Attachers check
/// magic, version and size before they trust anything else.
struct alignas(64) SegmentHeader {
    std::atomic<uint32_t> magic;      // writer: sustaind, last, with release
    uint32_t layoutVersion;
    uint64_t segmentSize;             // sizeof(Segment)
    int32_t creatorPid;
    uint32_t reserved0;
    uint64_t createdNs;               // CLOCK_MONOTONIC at creation
    uint64_t createdRealtimeNs;       // CLOCK_REALTIME at creation (for humans)
    // Region offsets from the start of the segment, for tools that read the raw bytes.
    uint64_t controlOffset;
    uint64_t configOffset;
    uint64_t slotsOffset;
    uint64_t paramsOffset;
    uint64_t ringsOffset;
    uint64_t stateOffset;
    uint64_t metricsOffset;
    uint64_t registryOffset;
    uint64_t reserved[2];
};
static_assert(sizeof(SegmentHeader) == 128);

/// Engine-wide readiness and health. Writers publish with release, readers acquire.
struct alignas(64) ControlBlock {
    std::atomic<uint32_t> activeSlot;         // writer: sustaind
    std::atomic<uint32_t> ready;              // writer: sustaind; 0→1 once the active worker's drain is live
    std::atomic<uint64_t> epoch;              // writer: sustaind; +1 on every failover or re-initialisation
    std::atomic<uint64_t> drainHeartbeatNs;   // writer: the active worker's control thread
    std::atomic<uint32_t> layoutVersion;      // writer: sustaind, at creation
    std::atomic<uint32_t> shutdownRequested;  // writer: sustaind; 1 = fade out and exit
    std::atomic<int32_t> supervisorPid;       // writer: sustaind
    uint32_t reserved0;
    std::atomic<uint64_t> supervisorHeartbeatNs;  // writer: sustaind's supervision loop
    uint64_t reserved[2];
};
static_assert(sizeof(ControlBlock) == 64);

/// The audio frame clock, for timed bundles: frame `frame` (RenderState::frame numbering)
/// began rendering at `startNs` (CLOCK_MONOTONIC) and frames follow each other every
/// `nsPerFrame` (the device's real rate, not the nominal one); a rendered frame is heard
/// playLatencyFrames later. The active worker's callback refreshes its slot's anchor every
/// block; readers take the active slot's anchor when its epoch is the slot's current one,
/// else the one written last (frame numbers continue across failovers; shm/frame_clock.h).
struct FrameAnchor {
    uint64_t frame;
    int64_t startNs;
    double nsPerFrame;
    uint64_t source;  // FrameClockSource
    uint64_t epoch;   // the writer's start epoch: an anchor of a fenced or dead process is not trusted
};
inline constexpr size_t kFrameAnchorWords = sizeof(FrameAnchor) / 8;
enum class FrameClockSource : uint64_t { None = 0, Jack = 1, Callback = 2 };

/// One worker slot's anchor, under a seqlock with a single writer: the process in that slot
/// (a replacement starts only once the process before it is gone).
struct alignas(64) FrameAnchorSlot {
    std::atomic<uint64_t> sequence;                   // seqlock over `anchor` (shm/seqlock.h); writer: worker slot i's callback
    std::atomic<uint64_t> anchor[kFrameAnchorWords];  // a FrameAnchor
    std::atomic<uint64_t> updates;                    // writer: same; blocks that refreshed the anchor
    uint64_t reserved[1];
};
static_assert(sizeof(FrameAnchorSlot) == 64);

struct alignas(64) FrameClock {
    FrameAnchorSlot anchors[kWorkerSlots];
    std::atomic<uint32_t> playLatencyFrames;   // writer: the process that plays (the output stage holding OutputMetrics::writerSlot, or the direct layout's active worker); the playing output stage's callback follows the render-to-play delay
    std::atomic<uint32_t> reportedLatencyFrames;  // writer: same; PortAudio's output latency alone (without the relay's period)
    uint64_t reserved[7];
};
static_assert(sizeof(FrameClock) == 192);

enum class OutputLayout : uint32_t { Direct = 0, Relay = 1 };

/// What this sustaind is (docs/hosts.md): the whole engine on one machine, or the audio
/// host of several (its render hosts have no segment of their own that matters here).
enum class EngineRole : uint32_t { Local = 0, AudioHost = 1 };

/// Written by sustaind before the first worker starts; constant afterwards.
struct alignas(64) EngineConfig {
    uint32_t sampleRate;
    uint32_t framesPerBuffer;
    uint32_t voices;           // 1..kMaxVoices
    uint32_t layout;           // OutputLayout
    uint32_t rampSamples;      // length of every parameter ramp (smoothing)
    uint32_t fadeSamples;      // length of the fade-out on shutdown
    uint32_t exclusiveDevice;  // 1: one process owns the device; a standby opens it only when promoted
    uint32_t role;             // EngineRole
    char instance[kInstanceNameMax + 1];
    char device[128];          // --device as given; empty = automatic choice
    char reserved1[63];
};
static_assert(sizeof(EngineConfig) == 256);

enum class WorkerRole : uint32_t { None = 0, Active = 1, Standby = 2, Output = 3 };
enum class WorkerState : uint32_t { Empty = 0, Starting = 1, Warm = 2, Active = 3, Fenced = 4, Dead = 5 };

/// One worker process. The slot's fields are written by sustaind while no worker runs in
/// it (pid, role, state `starting`/`dead`) and by the worker itself while it is alive.
struct alignas(64) WorkerSlot {
    std::atomic<int32_t> pid;              // writer: sustaind
    std::atomic<uint32_t> role;            // writer: sustaind (WorkerRole)
    std::atomic<uint32_t> state;           // writer: sustaind before spawn/after death; the worker while alive
    std::atomic<uint32_t> exitReason;      // writer: the worker, before it exits on purpose (WorkerExit)
    std::atomic<uint64_t> epoch;           // writer: sustaind; the epoch this worker was started in
    std::atomic<uint64_t> callbacks;       // writer: the worker's callback
    std::atomic<uint64_t> lastCallbackNs;  // writer: the worker's callback (CLOCK_MONOTONIC)
    std::atomic<uint64_t> xruns;           // writer: the worker's callback (underflows PortAudio reported)
    std::atomic<uint32_t> loadPermille;    // writer: the worker's callback; time in callback / period, smoothed
    std::atomic<uint32_t> loadPeakPermille;// writer: the worker's callback; highest single block
    std::atomic<uint64_t> clippedSamples;  // writer: the worker's callback
    std::atomic<uint64_t> startedNs;       // writer: the worker, when its stream started
    std::atomic<uint32_t> fadedOut;        // writer: the worker's callback; 1 once the shutdown fade is done
    std::atomic<uint32_t> clientGeneration;// writer: sustaind, before pid; names the process's JACK client (workerClientName)
    std::atomic<uint64_t> rtLogDropped;    // writer: the worker's callback; log records lost to a full log ring
    char deviceName[128];                  // writer: the worker, before state becomes Active
    // Standby bookkeeping (writer: the worker's callback):
    std::atomic<uint64_t> lastBlock;       // number + 1 of the last block this worker completed
    std::atomic<uint64_t> syncedBlocks;    // blocks rendered from the active's published state
    std::atomic<uint64_t> ownBlocks;       // blocks rendered from its own state (active not advancing)
    std::atomic<uint32_t> activeStall;     // consecutive own cycles without the active advancing
    std::atomic<uint32_t> takeover;        // direct layout: 1 once this standby plays instead of the active (0: it does not)
    std::atomic<uint64_t> takeoverNs;      // when it took over
    std::atomic<uint64_t> stallSinceNs;    // first cycle of the current stall
    std::atomic<uint64_t> heldBlocks;      // relay, active: cycles held back so that the output stage caught up
    std::atomic<uint64_t> controlBeats;    // writer: the control thread, once per loop (it wakes at least every 50 ms)
    std::atomic<uint64_t> caughtUpBlocks;  // relay: extra blocks rendered for JACK cycles this worker was not run in
    std::atomic<uint64_t> handbackFrame;   // direct layout, a standby that took over: the JACK frame from which the active plays again (0: none yet)
    std::atomic<uint64_t> handbacks;       // direct layout: takeovers handed back because the active ran again (it was late, not dead)
    std::atomic<uint64_t> lastCycleFrame;  // writer: the worker's callback; 1 << 32 | JACK's frame time of the cycle its last block was rendered in (0: unknown)
    // What a fence leaves readable (shm/fencing.h): the epoch the fenced process had, and the
    // block numbers below which it had completed every block it published. 0: not fenced.
    std::atomic<uint64_t> fencedEpoch;       // writer: sustaind
    std::atomic<uint64_t> fencedBelowBlock;  // writer: sustaind
    uint64_t reserved[2];
};
static_assert(sizeof(WorkerSlot) == 384);

/// Why a worker exited on purpose (the exit code says the same).
// DeviceLost: the stream stopped on its own while playing (device unplugged, JACK server gone).
enum class WorkerExit : uint32_t { None = 0, Clean = 1, NoDevice = 3, AttachFailed = 4, StreamFailed = 5, DeviceLost = 6 };

/// One entry of the parameter state table: the authoritative desired value.
struct alignas(16) ParamEntry {
    std::atomic<double> value;      // writer: the OSC thread (store value, then version with release)
    std::atomic<uint64_t> version;  // writer: the OSC thread; the sequence number of the last write
};
static_assert(sizeof(ParamEntry) == 16);

/// Last writer wins; every process may read it at any time.
struct alignas(64) ParamTable {
    ParamEntry entries[kParamCount];
    std::atomic<uint64_t> lastSequence;  // writer: the OSC thread
    uint64_t reserved[7];
};

/// Indices of a single-producer single-consumer ring; the storage lies beside it.
/// See shm/spsc_ring.h for the protocol.
struct alignas(64) RingIndices {
    alignas(64) std::atomic<uint64_t> writeIndex;      // writer: the producer
    alignas(64) std::atomic<uint64_t> readIndex;       // writer: the consumer
    alignas(64) std::atomic<uint32_t> consumerSleeping;// set by the consumer before it sleeps; cleared by whoever wakes it
    uint32_t capacity;                                 // constant; a power of two
    std::atomic<uint64_t> rejectedFull;                // writer: the producer
    std::atomic<uint64_t> wakesSent;                   // writer: the producer
    uint64_t reserved[5];
};
static_assert(sizeof(RingIndices) == 192);

struct alignas(64) CommandRing {
    RingIndices indices;
    Command slots[kCommandRingCapacity];
};

/// What a worker's callback does to a parameter: a linear ramp from `current` to
/// `target`, `remaining` samples long. Deterministic: the same state and the same
/// commands render the same samples in any worker.
struct Ramp {
    double current;
    double target;
    double step;
    uint32_t remaining;
    uint32_t reserved;
};
static_assert(sizeof(Ramp) == 32);

struct VoiceState {
    double phase;  // in cycles, [0, 1)
    Ramp freq;     // Hz
    Ramp gain;     // linear
};

/// Everything the callback renders from, as of the end of a block.
/// Block numbers: the block rendered from a state with `blocks == b` is block b.
struct RenderState {
    uint64_t frame;          // frames rendered so far
    uint64_t blocks;         // blocks rendered so far = number of the next block
    Ramp master;             // linear
    VoiceState voices[kMaxVoices];
    uint64_t appliedSequence[kParamCount];  // per parameter, the sequence number of the last command applied
};
static_assert(std::is_trivially_copyable_v<RenderState>);

inline constexpr size_t kRenderStateWords = (sizeof(RenderState) + 7) / 8;

/// What a worker publishes at the end of each block: its state and the epoch it renders
/// in, under one seqlock, so that a reader never pairs one process's state with another's
/// epoch (a replacement writes the same slot).
struct PublishedRender {
    uint64_t epoch;     // the writer's start epoch
    RenderState state;
};
static_assert(std::is_trivially_copyable_v<PublishedRender>);
inline constexpr size_t kPublishedRenderWords = (sizeof(PublishedRender) + 7) / 8;

/// A worker's published end-of-block state, under a seqlock (see shm/seqlock.h).
struct alignas(64) PublishedState {
    std::atomic<uint64_t> sequence;                      // writer: the worker's callback; odd while writing
    std::atomic<uint64_t> heartbeatNs;                   // writer: the worker's callback
    std::atomic<uint64_t> words[kPublishedRenderWords];  // a PublishedRender, copied word by word
};

/// One period of sound in a worker's audio ring (relay layout), under a seqlock: the writer
/// makes `sequence` odd (shm/seqlock.h's seqlockBegin), stores the tag and the samples, then
/// makes it even with release; a reader loads the sequence (acquire; even), checks the tag,
/// copies, and loads the sequence again: the copy is good only if it did not change. The
/// tag alone would not do: a worker may write the same number again (a standby re-renders a
/// block from the active's newer state), and a reader would see the same tag around a
/// copy that mixes both writes. Samples are relaxed atomics so that a torn read is detected
/// rather than undefined.
struct alignas(64) AudioBlock {
    std::atomic<uint64_t> sequence; // writer: the worker's callback; odd while writing
    std::atomic<uint64_t> tag;      // writer: the worker's callback; block number + 1
    std::atomic<uint64_t> epoch;    // writer: the worker's callback; its start epoch
    std::atomic<uint64_t> startNs;  // writer: the worker's callback; CLOCK_MONOTONIC at its callback start
    uint32_t frames;                // written before tag
    std::atomic<uint32_t> jackCycleFrame;  // writer: the worker's callback; JACK's frame time at the start of the cycle it was rendered in (0: unknown)
    uint64_t reserved[3];
    std::atomic<float> samples[kMaxRelayFrames * kAudioChannels];  // interleaved
};
static_assert(std::atomic<float>::is_always_lock_free);

struct alignas(64) AudioRing {
    AudioBlock blocks[kAudioRingBlocks];
};

/// What the output stage did. Written by whichever output stage holds `writerSlot`
/// (the active one; a standby output stage takes it over with a compare-exchange when
/// the active one stops running).
struct alignas(64) OutputMetrics {
    std::atomic<uint32_t> writerSlot;        // output slot that plays; CAS by a standby output stage taking over
    std::atomic<uint32_t> synced;            // 1 once nextBlock is locked to the active worker
    std::atomic<uint64_t> nextBlock;         // number of the block to play in the next cycle
    std::atomic<uint64_t> cycles;            // output callbacks so far (the engine's cycle clock)
    std::atomic<uint64_t> fromActive;        // blocks played from the active worker
    std::atomic<uint64_t> fromStandby;       // blocks played from the standby (active's missing or fenced)
    std::atomic<uint64_t> unfilled;          // cycles without any block: silence was played
    std::atomic<uint64_t> resyncs;           // play position re-locked to the active worker
    std::atomic<uint64_t> compared;          // blocks present in both workers' rings
    std::atomic<uint64_t> matched;           // ... and bit-identical
    std::atomic<uint64_t> lastMatchCycle;    // cycle of the last bit-identical pair
    std::atomic<uint64_t> lastFromStandbyCycle;
    std::atomic<uint64_t> takeovers;         // times a standby output stage took over
    std::atomic<uint64_t> lagBlocks;         // periods of latency beyond the relay's one (writer: output; the active worker clears it when it holds back)
    std::atomic<uint64_t> staleCancellations;   // times a process in the mix (an output stage; a worker in the direct layout) began to play instead of the other and silenced the buffer that one left in JACK's mix
    std::atomic<uint64_t> staleCancelledCycles; // cycles in which the process that plays silenced that buffer
    // Which process in JACK's mix plays the JACK cycle with this frame time (an output stage
    // in the relay layout, a worker in the direct layout): 1 << 33 | frame << 1 | its slot,
    // claimed by CAS (claimCycle, engine/rt/stale_buffer.h), so that exactly one plays any
    // cycle even when a takeover and a late process's return fall into the same cycle.
    // 0: none yet.
    std::atomic<uint64_t> playClaim;         // writer: the callbacks of the processes in the mix (CAS)
    std::atomic<uint64_t> fromFenced;        // blocks played from a fenced worker, completed before its fence (neither other worker had them)
    uint64_t reserved[6];
};

/// Counters and histograms. Each has one writer; readers compute rates and percentiles.
struct alignas(64) OscMetrics {  // writer: the OSC thread
    std::atomic<uint64_t> received;          // datagram elements that reached validation
    std::atomic<uint64_t> accepted;
    std::atomic<uint64_t> rejected;          // sum of the rejected* below
    std::atomic<uint64_t> rejectedMalformed;
    std::atomic<uint64_t> rejectedUnknownAddress;
    std::atomic<uint64_t> rejectedBadType;
    std::atomic<uint64_t> rejectedArgCount;
    std::atomic<uint64_t> rejectedNotFinite;
    std::atomic<uint64_t> rejectedOutOfRange;
    std::atomic<uint64_t> rejectedOversize;
    std::atomic<uint64_t> kernelDrops;       // datagrams the kernel dropped (SO_RXQ_OVFL)
    std::atomic<uint64_t> datagrams;
    std::atomic<uint64_t> ringCoalesced;     // updates folded into a later refresh because a ring was full
    std::atomic<uint64_t> receiveBufferBytes;// SO_RCVBUF as granted
    std::atomic<uint64_t> repliesSent;       // /engine/status, /engine/pong, notifications
    std::atomic<uint64_t> subscribersDropped;// subscribers and surfaces dropped after kMaxSendFailures failed sends in a row
    std::atomic<uint64_t> rejectedSender;    // datagrams from senders outside --allow
    std::atomic<uint64_t> rejectedScheduleFull; // timed messages refused: kMaxTimedEvents already wait
    std::atomic<uint64_t> timedScheduled;    // timed messages accepted for a future frame
    std::atomic<uint64_t> timedLate;         // timed messages whose time had passed: applied at once
    std::atomic<uint64_t> timedPending;      // timed messages waiting now
    std::atomic<uint64_t> syncsAnswered;     // /engine/sync answered with /engine/synced
    std::atomic<uint64_t> syncsRefused;      // /engine/sync refused (too many waiting) or timed out
    std::atomic<uint64_t> lateNotifications; // /engine/late messages sent to subscribers
    std::atomic<uint64_t> tcpConnections;    // OSC over TCP: connections open now
    std::atomic<uint64_t> tcpAccepted;       // ... accepted so far
    std::atomic<uint64_t> tcpRefused;        // ... refused (connection limit, --allow)
    std::atomic<uint64_t> tcpClosedOnError;  // ... closed: framing error, oversize, stalled packet
    std::atomic<uint64_t> tcpFramingErrors;  // ... framing errors and oversize packets
    std::atomic<uint64_t> tcpRepliesDropped; // ... replies dropped because a client did not read
    std::atomic<uint64_t> receiveBatches;    // recvmmsg() calls that returned datagrams
    // Clients that come and go (docs/clients.md): the feedback tables now, and why clients left them.
    std::atomic<uint64_t> subscribersNow;    // /engine/notify subscribers in the table now
    std::atomic<uint64_t> surfacesNow;       // control surfaces in the table now
    std::atomic<uint64_t> leftUnsubscribed;  // /engine/notify 0
    std::atomic<uint64_t> leftUnreachable;   // an ICMP error said the client's address or port is gone
    std::atomic<uint64_t> leftLeaseExpired;  // not heard from for a whole lease
    std::atomic<uint64_t> leftEvicted;       // the table was full: the one heard from least recently made room
    std::atomic<uint64_t> proofsAsked;       // /engine/notify.proof sent: a subscriber beyond loopback must echo it
    std::atomic<uint64_t> proofsFailed;      // /engine/notify 1 with a wrong token
    std::atomic<uint64_t> surfacesUnproven;  // mapped messages from a surface that gets no feedback (untrusted address)
    std::atomic<uint64_t> icmpErrors;        // errors the kernel queued for our datagrams (IP_RECVERR)
    std::atomic<uint64_t> rejectedTooFarAhead;  // timed messages refused: further ahead than the horizon
    std::atomic<uint64_t> rejectedSenderQuota;  // timed messages refused: their sender already holds its share
    std::atomic<uint64_t> tcpIdleClosed;     // TCP connections closed after a lease of silence
    std::atomic<uint64_t> tcpEvicted;        // TCP connections closed to make room: the quietest, for a newcomer
    std::atomic<uint64_t> tinyFlushed;       // values below kTinyValue set to exactly 0
    // scsynth-style requests (docs/clients.md)
    std::atomic<uint64_t> tracing;           // 1 while /engine/dumpOSC 1 is in force
    std::atomic<uint64_t> traced;            // messages written to the log by /engine/dumpOSC
    std::atomic<uint64_t> failRepliesSent;   // /engine/fail answers to clients that asked with /engine/error 1
    std::atomic<uint64_t> timedCleared;      // timed messages dropped by /engine/clearSched or /engine/panic
    std::atomic<uint64_t> panics;            // /engine/panic requests
    std::atomic<uint64_t> patternMessages;   // messages with an OSC address pattern (* ? [] {})
    std::atomic<uint64_t> patternTargets;    // addresses those patterns matched, each handled as a message
    // Control surfaces (docs/mapping.md)
    std::atomic<uint64_t> surfaceIgnored;    // messages the mapping says to ignore: its ignore list, button releases
    std::atomic<uint64_t> labelsSent;        // text labels sent to surfaces ([[label]])
    uint64_t reserved[1];                    // room to grow without moving later regions
    std::atomic<uint64_t> lateBins[kLateBins];  // lateness of late timed messages, ms, log2 bins
};

struct alignas(64) WorkerMetrics {
    std::atomic<uint64_t> applied;            // writer: callback; commands set as targets
    std::atomic<uint64_t> controlCoalesced;   // writer: control thread; superseded before reaching the callback
    std::atomic<uint64_t> drained;            // writer: control thread; taken from the shared ring
    std::atomic<uint64_t> staleEpochSkips;    // writer: control thread
    std::atomic<uint64_t> latencyOverflow;    // writer: callback
    std::atomic<uint64_t> latencySum;         // writer: callback; samples
    std::atomic<uint64_t> callbackCoalesced;  // writer: callback; superseded in the callback's pending set
    std::atomic<uint64_t> timedApplied;       // writer: callback (active); timed commands applied at their frame
    std::atomic<uint64_t> timedLate;          // writer: callback (active); timed commands that reached it after their frame
    std::atomic<uint64_t> timedOverflow;      // writer: control thread; timed commands it could not hold (applied at once)
    std::atomic<uint64_t> timedLateFramesLast;  // writer: callback (active); how many frames late the last late one was
    std::atomic<uint64_t> wakesSent;          // writer: the OSC thread; wake bytes written to this slot's control thread
    uint64_t reserved[3];
    std::atomic<uint64_t> latencyBins[kLatencyBins + 1];  // writer: callback; receive→applied, samples
    std::atomic<uint64_t> drainBins[kDrainBins + 1];      // writer: control thread; push→drained, us
};

enum class DegradedReason : uint32_t {
    None = 0, NoSpare = 1, BackingOff = 2, NoOutputSpare = 3, ColdStart = 4, WaitingForDevice = 5,
    StuckProcess = 6,  // a killed process does not die (the kernel holds it); its slot waits
};

struct alignas(64) SupervisorMetrics {  // writer: sustaind
    std::atomic<uint64_t> crashCount;        // worker and output-stage processes that died or were fenced
    std::atomic<uint64_t> replacements;      // processes started to replace one
    std::atomic<uint64_t> shmLeaks;          // allocations of dead owners that could not be reclaimed
    std::atomic<uint64_t> reclaimedSegments;
    std::atomic<uint64_t> lastRestartNs;
    std::atomic<uint32_t> backingOff;        // 1 while restarts are slowed after a crash loop
    std::atomic<uint32_t> spareReady;        // 1 while the standby renders in step
    std::atomic<uint32_t> degradedReason;    // DegradedReason
    std::atomic<uint32_t> outputSpareReady;  // 1 while a standby output stage runs (relay layout)
    std::atomic<uint64_t> failovers;         // switches of the active worker
    std::atomic<uint64_t> fencings;          // workers fenced (epoch made stale, then killed)
    std::atomic<uint64_t> outputFailovers;   // playing output stages lost (dead or hung), the standby playing instead
    std::atomic<uint64_t> detectionUsLast;   // fault (last heartbeat) → sustaind noticed
    std::atomic<uint64_t> detectionUsMax;
    std::atomic<uint64_t> failoverUsLast;    // sustaind noticed → standby made active
    std::atomic<uint64_t> failoverUsMax;
    std::atomic<uint64_t> rebuildUsLast;     // replacement started → warm (renders in step)
    std::atomic<uint64_t> rebuildUsMax;
    std::atomic<uint64_t> coldStarts;        // everything died at once
    std::atomic<uint64_t> deviceLosses;      // times the audio device went away under a running engine
    std::atomic<uint64_t> graphChangesDropped;  // port removals not asked for: the JACK server left 16 unanswered
    std::atomic<uint64_t> stuckProcesses;    // killed and not gone yet (an uninterruptible wait in the kernel)
    std::atomic<uint64_t> preparedUsed;      // replacement workers that were started ahead and waiting (docs/failover.md)
    std::atomic<uint64_t> preparedLost;      // prepared workers that died or were stopped before they were needed
    std::atomic<int32_t> preparedPid;        // the worker prepared and waiting now (0: none)
    // A standby output stage played for the playing one while JACK did not run it, and that
    // one ran again and plays on as the standby: nothing lost, nothing killed.
    std::atomic<uint32_t> outputCovers;
};

enum class RegistryKind : uint32_t { Free = 0, Segment = 1, LockFile = 2, SocketPair = 3 };

/// One thing the engine allocated and must give back. Fields are written before
/// `kind` is stored with release; readers load `kind` with acquire first.
struct alignas(64) RegistryEntry {
    std::atomic<uint32_t> kind;  // writer: sustaind (RegistryKind)
    int32_t ownerPid;
    uint64_t size;
    uint64_t createdNs;
    char name[40];
};
static_assert(sizeof(RegistryEntry) == 64);

struct alignas(64) Registry {
    RegistryEntry entries[kRegistryEntries];
};


// ---- Render hosts (audio host role, docs/hosts.md) -----------------------------------------

enum class HostState : uint32_t {
    Empty = 0,    // no render host in this row
    Joining = 1,  // connected; not yet delivering blocks in step
    InStep = 2,   // delivers every block in step: a warm standby, or the one played
    Down = 3,     // stopped delivering (killed, frozen, link down, unplugged) or disconnected
};

/// One render host as the audio host sees it. The link's fields are written by sustaind,
/// the blocks' by the host output stage (its callback).
struct alignas(64) RenderHostSlot {
    std::atomic<uint32_t> state;            // writer: sustaind (HostState)
    std::atomic<uint32_t> connected;        // writer: sustaind; 1 while its link is open
    std::atomic<uint64_t> linkGeneration;   // writer: sustaind; +1 on each new link in this row (the stage reconnects ports)
    char netName[32];                       // writer: sustaind, before linkGeneration; its netjack2 client name
    char address[48];                       // writer: sustaind, before linkGeneration; where its link comes from
    std::atomic<uint64_t> joins;            // writer: sustaind; links accepted in this row
    std::atomic<uint64_t> snapshotsSent;    // writer: sustaind; joins and re-syncs
    std::atomic<uint64_t> commandsSent;     // writer: sustaind
    std::atomic<uint64_t> downs;            // writer: sustaind; times it went down
    uint64_t reserved1;
    std::atomic<uint64_t> upSinceNs;        // writer: sustaind; when it came back (joined) after a fault
    std::atomic<uint64_t> warmUsLast;       // writer: sustaind; back (first block after a fault) -> in step again
    std::atomic<uint64_t> warmUsMax;        // writer: sustaind
    // writer: the host output stage's callback
    std::atomic<uint64_t> blocks;           // labelled blocks that arrived
    std::atomic<uint64_t> lateBlocks;       // ... after the cycle they were to be played in
    std::atomic<uint64_t> outOfStepBlocks;  // ... labelled not in step (catching up, re-syncing)
    std::atomic<uint64_t> played;           // blocks played from this host
    uint64_t reserved0;
    std::atomic<uint64_t> inStepRun;        // blocks in a row that arrived in time and in step
    std::atomic<uint32_t> latencyCycles;    // the last block: arrival cycle minus the cycle it was asked for in
    std::atomic<uint32_t> connectedPorts;   // writer: the stage's main thread; 1 while its ports are wired
    std::atomic<uint64_t> missingRun;       // writer: the stage's play client; cycles in a row it played without this host's block
    std::atomic<uint64_t> recoveredBlocks;  // writer: the stage's receiver; blocks filed from their repeat (the first was lost)
    uint64_t reserved[2];
};
static_assert(sizeof(RenderHostSlot) == 256);

struct alignas(64) HostsRegion {
    std::atomic<uint32_t> preferred;        // writer: sustaind; the row whose blocks are played when present
    std::atomic<uint32_t> playoutPeriods;   // writer: sustaind, before the stage starts; blocks are asked for this many cycles ahead
    std::atomic<uint64_t> cycle;            // writer: the stage's callback; the cycle (JACK frame time / period) it plays now
    uint64_t reserved1;
    std::atomic<uint64_t> fromPreferred;    // writer: the stage; blocks played from the preferred host
    std::atomic<uint64_t> fromOther;        // writer: the stage; ... from the other (the preferred's was missing)
    std::atomic<uint64_t> outOfStepPlayed;  // writer: the stage; ... from a host not in step (nothing better)
    std::atomic<uint64_t> unfilled;         // writer: the stage; cycles with no block: silence
    std::atomic<uint64_t> compared;         // writer: the stage; tags both hosts delivered in step
    std::atomic<uint64_t> matched;          // ... and bit-identical
    std::atomic<uint64_t> failovers;        // writer: sustaind; preferred host switched because it went down
    uint64_t reserved0;
    std::atomic<uint64_t> skippedCycles;    // writer: the stage's play client; cycles JACK did not run it in (its cycle number jumped)
    uint64_t reserved[3];
    RenderHostSlot hosts[kRenderHostSlots];
};

// ---- The segment ------------------------------------------------------------------------

struct Segment {
    SegmentHeader header;
    ControlBlock control;
    FrameClock clock;
    EngineConfig config;
    WorkerSlot slots[kWorkerSlots];
    WorkerSlot outputs[kOutputSlots];     // the output stages (relay layout); same fields
    ParamTable params;
    CommandRing rings[kWorkerSlots];      // producer: the OSC thread; consumer: worker slot i's control thread
    PublishedState state[kWorkerSlots];   // writer: worker slot i's callback
    AudioRing audio[kWorkerSlots];        // writer: worker slot i's callback; reader: the output stage
    OutputMetrics output;
    OscMetrics osc;
    WorkerMetrics workers[kWorkerSlots];
    SupervisorMetrics supervisor;
    Registry registry;
    HostsRegion hosts;                    // audio host role only (EngineConfig::role)
};
static_assert(std::is_standard_layout_v<Segment>);

inline constexpr uint64_t kSegmentSize = sizeof(Segment);

}  // namespace sustain
