// Time ↔ audio frames, for OSC bundles timed to the sample.
//
// An OSC timetag says when a change should be *heard*, on the sender's wall clock (NTP
// format). The engine renders in frames. The active worker's callback publishes when a
// frame began rendering on CLOCK_MONOTONIC and how fast frames follow each other (its
// slot's anchor in FrameClock), the playing process how long a rendered frame takes to reach the
// listener (playLatencyFrames); with both, the OSC thread turns a timetag into the frame
// that must carry the change, once, so that every worker (active and standby) applies it
// at the same sample.
//
// Where the anchor comes from: on JACK, JACK's own cycle clock (jack_get_cycle_times: its
// filtered estimate of when the driver began the cycle, and the real period, which is not
// exactly the nominal one: the dummy driver here runs a few percent slow); elsewhere the
// callback's start times, filtered by FrameZeroEstimator at the nominal rate.
#pragma once

#include <algorithm>

#include <cmath>
#include <cstdint>

#include "shm/layout.h"
#include "shm/seqlock.h"

namespace sustain {

/// OSC timetags that mean "now": 0 (a bare message, by our convention) and 1 ("immediately").
constexpr bool isImmediateTimetag(uint64_t timetag) { return timetag <= 1; }

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
inline constexpr int64_t kNtpToUnixSeconds = 2208988800LL;

/// An NTP timetag (32.32 fixed point seconds since 1900) as nanoseconds since 1970 on
/// CLOCK_REALTIME. The 32 bits of seconds wrap every 2^32 s (first on 2036-02-07, era 1), and
/// the timetag does not say its era: the one that puts it nearest to `nowUnixNs` is taken, as
/// RFC 5905 does, so timetags keep working across a wrap in either direction.
/// Exact to the nanosecond (rounded down). Thread: any.  RT-safe: yes.
constexpr int64_t ntpToUnixNs(uint64_t timetag, int64_t nowUnixNs) {
    const int64_t nowSeconds = (nowUnixNs >= 0 ? nowUnixNs : nowUnixNs - 999'999'999LL) / 1'000'000'000LL +
                               kNtpToUnixSeconds;
    const auto wireSeconds = static_cast<uint32_t>(timetag >> 32);
    // The signed distance on the 2^32 circle from now to the timetag.
    const auto ahead = static_cast<int32_t>(wireSeconds - static_cast<uint32_t>(static_cast<uint64_t>(nowSeconds)));
    const int64_t seconds = nowSeconds + ahead - kNtpToUnixSeconds;
    const uint64_t fraction = timetag & 0xffffffffULL;
    return seconds * 1'000'000'000LL + static_cast<int64_t>((fraction * 1'000'000'000ULL) >> 32);
}

/// The inverse (for clients and tests): nanoseconds since 1970 as an NTP timetag (its era
/// dropped, as on the wire).
constexpr uint64_t unixNsToNtp(int64_t unixNs) {
    const int64_t seconds = unixNs / 1'000'000'000LL;
    const auto nanos = static_cast<uint64_t>(unixNs % 1'000'000'000LL);
    // Round up so that ntpToUnixNs(unixNsToNtp(t), t) == t.
    const uint64_t fraction = ((nanos << 32) + 999'999'999ULL) / 1'000'000'000ULL;
    return (static_cast<uint64_t>(seconds + kNtpToUnixSeconds) << 32) | (fraction & 0xffffffffULL);
}

/// The rate frames are played at, from the anchors' start times two seconds apart: JACK's
/// own estimate of the period (next cycle's start minus this one's) can be off by a percent
/// and more for seconds after a disturbance, tens of samples over the 30 ms a timed change is
/// turned into a frame ahead (kTimedPushAheadNs); the nominal rate is off by what the
/// device's clock is (the dummy driver here: 0.03 % to a few percent slow). An estimate that
/// strays more than 10 % from the nominal rate is not taken. Thread: one callback.
/// RT-safe: yes.
struct FrameRateEstimate {
    static constexpr int64_t kBaselineNs = 2'000'000'000;
    uint64_t baseFrame = 0;
    int64_t baseNs = 0;
    double nsPerFrame = 0.0;  // 0 until the first baseline: the nominal rate

    double update(uint64_t frame, int64_t startNs, double nominalNsPerFrame) noexcept {
        if (baseNs == 0 || frame <= baseFrame || startNs <= baseNs) {
            baseFrame = frame;
            baseNs = startNs;
        } else if (startNs - baseNs >= kBaselineNs) {
            const double estimate = static_cast<double>(startNs - baseNs) / static_cast<double>(frame - baseFrame);
            if (estimate > 0.9 * nominalNsPerFrame && estimate < 1.1 * nominalNsPerFrame) nsPerFrame = estimate;
            baseFrame = frame;
            baseNs = startNs;
        }
        return nsPerFrame > 0.0 ? nsPerFrame : nominalNsPerFrame;
    }
};

/// An anchor from JACK's own times of a cycle: frame `frame` is played when the cycle began
/// (`usecs`, JACK's clock, `jackMinusMonotonicNs` from CLOCK_MONOTONIC), the next cycle
/// begins at `nextUsecs`; frames follow at the rate `rate` measures. False when the times
/// are not sane: after a disturbance JACK's filtered timer can say that the next cycle
/// begins before this one. The cycle began before the callback did (`callbackStartNs`); the
/// timer can lie ahead of the callback after a disturbance (by milliseconds, for seconds),
/// and then the callback's own start is nearer. Thread: the callback that owns `rate`.
/// RT-safe: yes.
inline bool jackFrameAnchor(uint64_t frame, uint64_t usecs, uint64_t nextUsecs, int64_t jackMinusMonotonicNs,
                            int64_t callbackStartNs, double nominalNsPerFrame, FrameRateEstimate& rate,
                            FrameAnchor& anchor) noexcept {
    if (nextUsecs <= usecs || !(nominalNsPerFrame > 0.0)) return false;
    anchor.frame = frame;
    anchor.startNs = std::min(static_cast<int64_t>(usecs) * 1000 - jackMinusMonotonicNs, callbackStartNs);
    anchor.nsPerFrame = rate.update(frame, anchor.startNs, nominalNsPerFrame);
    anchor.source = static_cast<uint64_t>(FrameClockSource::Jack);
    return true;
}

/// Publishes worker slot `slot`'s anchor. Thread: that slot's callback.  RT-safe: yes.
inline void publishFrameAnchor(FrameClock& clock, uint32_t slot, const FrameAnchor& anchor) noexcept {
    FrameAnchorSlot& own = clock.anchors[slot % kWorkerSlots];
    seqlockWrite(own.sequence, own.anchor, anchor, FaultPoint::FrameClockWrite);
    own.updates.fetch_add(1, std::memory_order_relaxed);
}

/// Reads one slot's anchor, of whatever epoch; false while it has none or cannot be read
/// (its writer died mid-write and no replacement wrote since). Thread: any.  RT-safe: yes.
inline bool readFrameAnchor(const FrameClock& clock, uint32_t slot, FrameAnchor& anchor) noexcept {
    const FrameAnchorSlot& from = clock.anchors[slot % kWorkerSlots];
    for (int attempt = 0; attempt < 16; ++attempt)
        if (seqlockRead(from.sequence, from.anchor, anchor))
            return anchor.source != static_cast<uint64_t>(FrameClockSource::None) && anchor.nsPerFrame > 0.0;
    return false;
}

/// The anchor written last by any process, live or not. Thread: any.  RT-safe: yes.
inline bool readLatestFrameAnchor(const FrameClock& clock, FrameAnchor& anchor) noexcept {
    bool found = false;
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot) {
        FrameAnchor candidate{};
        if (readFrameAnchor(clock, slot, candidate) && (!found || candidate.startNs > anchor.startNs)) {
            anchor = candidate;
            found = true;
        }
    }
    return found;
}

/// The engine's frame clock: the active slot's anchor when the process of that slot's
/// current epoch wrote it; otherwise (right after a failover, before the new active's
/// first block, or while a cold start opens its stream) the anchor written last. Frame
/// numbers continue across failovers and cold starts, so that one is still right about
/// which frame is which; the active's own is preferred because a fenced process may run
/// on for a moment and its anchor then says nothing about the frames that play.
/// False while no worker has rendered yet. Thread: any.  RT-safe: yes.
inline bool readFrameClock(const Segment& segment, FrameAnchor& anchor) noexcept {
    const uint32_t active = segment.control.activeSlot.load(std::memory_order_acquire) % kWorkerSlots;
    if (readFrameAnchor(segment.clock, active, anchor) &&
        anchor.epoch == segment.slots[active].epoch.load(std::memory_order_acquire))
        return true;
    return readLatestFrameAnchor(segment.clock, anchor);
}

/// When `frame` begins rendering (CLOCK_MONOTONIC). Thread: any.  RT-safe: yes.
inline int64_t renderStartNs(const FrameAnchor& anchor, int64_t frame) noexcept {
    const double frames = static_cast<double>(frame - static_cast<int64_t>(anchor.frame));
    return anchor.startNs + static_cast<int64_t>(std::llround(frames * anchor.nsPerFrame));
}

/// The frame that is heard at `heardNs`. Thread: any.  RT-safe: yes.
inline int64_t frameHeardAt(const FrameAnchor& anchor, int64_t heardNs, uint32_t playLatencyFrames) noexcept {
    const double frames = static_cast<double>(heardNs - anchor.startNs) / anchor.nsPerFrame;
    return static_cast<int64_t>(anchor.frame) + static_cast<int64_t>(std::llround(frames)) -
           static_cast<int64_t>(playLatencyFrames);
}

/// The frame being rendered at `nowNs` (rounded down). Thread: any.  RT-safe: yes.
inline int64_t frameRenderedAt(const FrameAnchor& anchor, int64_t nowNs) noexcept {
    const double frames = static_cast<double>(nowNs - anchor.startNs) / anchor.nsPerFrame;
    return static_cast<int64_t>(anchor.frame) + static_cast<int64_t>(std::floor(frames));
}

/// Where frame 0 lies, given that the block starting at `frame` began at `blockStartNs`.
inline int64_t frameZeroFor(uint64_t frame, int64_t blockStartNs, double sampleRate) {
    return blockStartNs - static_cast<int64_t>(std::llround(static_cast<double>(frame) * 1e9 / sampleRate));
}

/// Estimates where frame 0 lies from the start times of recent blocks.
///
/// A callback starts some microseconds after its cycle began (the driver's wake-up, the
/// clients before it); that delay is never negative, so the smallest offset seen over a
/// window of blocks is the closest to the cycle's true start. The clock can also step
/// later for good: after an xrun, or when the relay layout's active worker holds back a
/// block, frames are rendered a period later than before. kStepBlocks blocks in a row
/// later than the estimate by more than half a period restart the window from them.
/// Thread: the active worker's callback.  RT-safe: yes (fixed arrays, bounded loops).
class FrameZeroEstimator {
public:
    static constexpr uint32_t kWindow = 64;      // about 85 ms at 64 frames / 48 kHz
    static constexpr uint32_t kStepBlocks = 8;

    /// Adds a block that started at `blockStartNs` with `frame`; returns the estimate.
    int64_t add(uint64_t frame, int64_t blockStartNs, double sampleRate, uint32_t periodFrames) {
        const int64_t offset = frameZeroFor(frame, blockStartNs, sampleRate);
        const auto halfPeriodNs = static_cast<int64_t>(periodFrames * 0.5e9 / sampleRate);
        if (count_ > 0 && offset > estimate_ + halfPeriodNs) {
            if (++later_ >= kStepBlocks) {
                // The clock stepped: keep only the blocks since the step (this one is added below).
                const uint32_t keep = later_ - 1;
                int64_t recent[kStepBlocks];
                for (uint32_t i = 0; i < keep; ++i) recent[i] = offsets_[(next_ + kWindow - 1 - i) % kWindow];
                count_ = next_ = 0;
                later_ = 0;
                for (uint32_t i = keep; i-- > 0;) push(recent[i]);
            }
        } else {
            later_ = 0;
        }
        push(offset);
        estimate_ = offsets_[0];
        for (uint32_t i = 1; i < count_; ++i)
            if (offsets_[i] < estimate_) estimate_ = offsets_[i];
        return estimate_;
    }

private:
    void push(int64_t offset) {
        offsets_[next_] = offset;
        next_ = (next_ + 1) % kWindow;
        if (count_ < kWindow) ++count_;
    }

    int64_t offsets_[kWindow] = {};
    int64_t estimate_ = 0;
    uint32_t next_ = 0;
    uint32_t count_ = 0;
    uint32_t later_ = 0;
};

}  // namespace sustain
