// Named fault points: places in every process where a test can make it die, stop or hang
// on demand (tools/chaos, tests/chaos). A point is armed in a running process by a signal
// carrying the point and the kind of fault (armFaultSignal()); the next thread that passes
// the point carries the fault out there, once.
//
// Test builds only: with the meson option fault_points off (release builds), every
// SUSTAIN_FAULT_POINT compiles to nothing. Where compiled in, a point costs one relaxed
// atomic load and a compare: real-time safe. Carrying a fault out is not (raise(), an
// endless loop): that is the point of it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace sustain {

/// Where a fault can be injected. The names (faultPointName) are what tools/chaos prints.
enum class FaultPoint : uint32_t {
    None = 0,
    CallbackEntry = 1,         // worker: first thing in the audio callback
    PublishedStateWrite = 2,   // worker: inside the end-of-block state's seqlock write (sequence odd, half written)
    FrameClockWrite = 3,       // worker: inside the frame-clock anchor's seqlock write
    AudioBlockWrite = 4,       // worker (relay): a block in the audio ring half written
    ControlDrain = 5,          // worker: the control thread between taking commands from its ring and queueing them
    ReplacementAttach = 6,     // worker: attached and starting, before its stream renders in step
    OutputChoice = 7,          // output stage: a block chosen and half copied to the playback port
    StateTableBeforeRing = 8,  // sustaind: a value in the state table, not yet pushed to the rings
    RingPush = 9,              // sustaind: a command written into a ring, the write index not yet published
    FenceBeforeSwitch = 10,    // sustaind: a failed worker fenced, the standby not yet made active
    Count = 11,
};

/// What happens at an armed point.
enum class FaultKind : uint32_t {
    Kill = 0,  // SIGKILL: the process is gone at once
    Stop = 1,  // SIGSTOP: frozen until someone sends SIGCONT (the explorer does, later)
    Segv = 2,  // a null write: SIGSEGV
    Loop = 3,  // the thread spins for ever (a hang)
    Count = 4,
};

constexpr std::string_view faultPointName(FaultPoint point) {
    switch (point) {
        case FaultPoint::None: return "none";
        case FaultPoint::CallbackEntry: return "callback_entry";
        case FaultPoint::PublishedStateWrite: return "published_state_write";
        case FaultPoint::FrameClockWrite: return "frame_clock_write";
        case FaultPoint::AudioBlockWrite: return "audio_block_write";
        case FaultPoint::ControlDrain: return "control_drain";
        case FaultPoint::ReplacementAttach: return "replacement_attach";
        case FaultPoint::OutputChoice: return "output_choice";
        case FaultPoint::StateTableBeforeRing: return "state_table_before_ring";
        case FaultPoint::RingPush: return "ring_push";
        case FaultPoint::FenceBeforeSwitch: return "fence_before_switch";
        case FaultPoint::Count: break;
    }
    return "unknown";
}

constexpr std::string_view faultKindName(FaultKind kind) {
    switch (kind) {
        case FaultKind::Kill: return "kill";
        case FaultKind::Stop: return "stop";
        case FaultKind::Segv: return "segv";
        case FaultKind::Loop: return "loop";
        case FaultKind::Count: break;
    }
    return "unknown";
}

/// The signal that arms a point: sigqueue(pid, armFaultSignal(), {point << 8 | kind});
/// the value 0 disarms. Thread: any.
int armFaultSignal();

/// The signal value that arms `point` with `kind`.
constexpr int faultSignalValue(FaultPoint point, FaultKind kind) {
    return static_cast<int>((static_cast<uint32_t>(point) << 8) | static_cast<uint32_t>(kind));
}

#if defined(SUSTAIN_FAULT_POINTS)

/// The armed point and kind (faultSignalValue), 0 when none. Written by the signal handler.
extern std::atomic<uint32_t> gArmedFault;

/// Carries out the armed fault if this thread is the first to claim it.
/// Thread: any.  RT-safe: no (that is the fault).
[[gnu::cold]] void carryOutFault(uint32_t armed) noexcept;

/// Passes a point. Thread: any.  RT-safe: yes while nothing is armed here.
inline void passFaultPoint(FaultPoint point) noexcept {
    const uint32_t armed = gArmedFault.load(std::memory_order_relaxed);
    if (armed != 0 && (armed >> 8) == static_cast<uint32_t>(point)) carryOutFault(armed);
}

/// Installs the arming signal's handler and unblocks it in the calling thread (so that at
/// least that thread takes it, whatever other threads block). Call first thing in main().
/// Thread: the main thread, before others start.
void installFaultPoints();

#define SUSTAIN_FAULT_POINT(point) ::sustain::passFaultPoint(point)

#else

inline void installFaultPoints() {}

#define SUSTAIN_FAULT_POINT(point) static_cast<void>(0)

#endif

/// True when this build has fault points compiled in.
constexpr bool kFaultPointsBuilt =
#if defined(SUSTAIN_FAULT_POINTS)
    true;
#else
    false;
#endif

}  // namespace sustain
