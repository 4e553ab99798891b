// The rules that order parameter changes on their way from the OSC thread to the audio,
// each decided here once; every stage of the command path applies them through these
// functions (docs/command-path.md says which stage applies which, and why).
#pragma once

#include <cstdint>

namespace sustain {

/// Newest value wins. The OSC thread numbers every change it accepts (Command::sequence,
/// ParamEntry::version) in the order it accepted them; of two changes to one parameter the
/// one with the higher number is the newer, wherever they meet (the state table, a full
/// ring's refresh, the control thread's pass, the callback's pending set, a timed change
/// that comes due after a later plain one). RT-safe: yes.
constexpr bool isNewer(uint64_t sequence, uint64_t than) noexcept { return sequence > than; }

/// Already applied: a state that holds the change numbered `held` for a parameter (its
/// RenderState::appliedSequence, or the table version a worker started from) holds every
/// change up to it; an older or equal one must not be applied again, and an /engine/sync
/// waiting for `sequence` is answered. RT-safe: yes.
constexpr bool alreadyHeld(uint64_t sequence, uint64_t held) noexcept { return !isNewer(sequence, held); }

/// Hold until due. A timed change waits where its time can be judged best, and moves down
/// one stage only when it is within that stage's horizon:
/// - in the OSC thread (CommandRouter) until kTimedPushAheadNs before it is heard: its frame
///   is computed then from the frame clock, whose rate error over 30 ms is a fraction of a
///   sample (over 200 ms it would be several);
/// - in the worker's control thread (CommandForwarder) until its frame is less than
///   kTimedLookaheadBlocks periods ahead of the callback's own frame, so that the callback's
///   bounded set of timed changes never fills with far-future ones;
/// - in the callback until its frame, where it applies to the sample.
inline constexpr int64_t kTimedPushAheadNs = 30'000'000;
inline constexpr uint32_t kTimedLookaheadBlocks = 8;

/// Admission to the schedule (CommandRouter::submitTimed), so that no sender can lock out
/// another (docs/clients.md):
/// - a change to be heard further ahead than the horizon is refused: a sequencer schedules
///   a few seconds ahead at most, a timetag minutes or years ahead is a wrong clock;
/// - one sender (address and port) may hold at most 1/kTimedSenderShares of the schedule's
///   kMaxTimedEvents places, so a flood from one leaves room for the others.
enum class TimedAdmission { Scheduled, TooFarAhead, SenderQuota, ScheduleFull };
inline constexpr uint64_t kDefaultTimedHorizonNs = 120'000'000'000ull;  // two minutes (--schedule-horizon)
inline constexpr uint32_t kTimedSenderShares = 4;

}  // namespace sustain
