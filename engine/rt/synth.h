// The synthesis: sine voices with linear parameter ramps, summed, times master gain.
//
// Everything here is deterministic and depends only on a RenderState and the commands
// applied to it, so a second worker that starts from a published RenderState renders
// bit-identical samples (the basis of failover without a damaged sample).
// All functions: Thread: the audio thread (or a test).  RT-safe: yes.
#pragma once

#include <cstdint>

#include "shm/layout.h"

namespace sustain {

/// Sets a ramp to move linearly from where it is now to `target` over `samples` samples.
inline void rampTo(Ramp& ramp, double target, uint32_t samples) noexcept {
    ramp.target = target;
    if (samples == 0 || ramp.current == target) {
        ramp.current = target;
        ramp.step = 0.0;
        ramp.remaining = 0;
        return;
    }
    ramp.step = (target - ramp.current) / static_cast<double>(samples);
    ramp.remaining = samples;
}

/// Jumps to `value` at once (initial state only: never while sound plays).
inline void rampSet(Ramp& ramp, double value) noexcept { rampTo(ramp, value, 0); }

/// Advances one sample and returns the new value.
inline double rampNext(Ramp& ramp) noexcept {
    if (ramp.remaining != 0) {
        ramp.current += ramp.step;
        if (--ramp.remaining == 0) ramp.current = ramp.target;
    }
    return ramp.current;
}

/// Sets a parameter's target with a ramp of `rampSamples`.
void applyParam(RenderState& state, uint32_t param, double value, uint32_t rampSamples) noexcept;

/// The state a fresh engine starts from: defaultParamValue() for every parameter, phases 0.
void initialRenderState(RenderState& state, double masterGain) noexcept;

struct RenderStats {
    uint32_t clipped = 0;  // samples that exceeded ±1 and were clamped
};

/// Renders `frames` frames into `out` (interleaved, `channels` channels, the same signal on
/// each), advancing phases, ramps and the frame counter; a block may be rendered in several
/// pieces (a timed change between them).
RenderStats renderFrames(RenderState& state, uint32_t voices, double sampleRate, float* out, uint32_t channels,
                         uint32_t frames) noexcept;

/// Renders a whole block: renderFrames(), then counts the block.
RenderStats renderBlock(RenderState& state, uint32_t voices, double sampleRate, float* out, uint32_t channels,
                        uint32_t frames) noexcept;

}  // namespace sustain
