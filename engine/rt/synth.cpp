#include "engine/rt/synth.h"

#include <cmath>
#include <numbers>

namespace sustain {

void applyParam(RenderState& state, uint32_t param, double value, uint32_t rampSamples) noexcept {
    if (param == kParamMasterGain) {
        rampTo(state.master, value, rampSamples);
        return;
    }
    if (param >= kParamCount) return;
    VoiceState& voice = state.voices[voiceOfParam(param)];
    rampTo(isVoiceFreqParam(param) ? voice.freq : voice.gain, value, rampSamples);
}

void initialRenderState(RenderState& state, double masterGain) noexcept {
    state = RenderState{};
    for (uint32_t param = 0; param < kParamCount; ++param) applyParam(state, param, defaultParamValue(param, masterGain), 0);
}

RenderStats renderFrames(RenderState& state, uint32_t voices, double sampleRate, float* out, uint32_t channels,
                        uint32_t frames) noexcept {
    RenderStats stats;
    const double inverseRate = 1.0 / sampleRate;
    constexpr double kTwoPi = 2.0 * std::numbers::pi;
    for (uint32_t frame = 0; frame < frames; ++frame) {
        const double master = rampNext(state.master);
        double sum = 0.0;
        for (uint32_t v = 0; v < voices; ++v) {
            VoiceState& voice = state.voices[v];
            const double gain = rampNext(voice.gain);
            const double freq = rampNext(voice.freq);
            if (gain != 0.0) sum += gain * std::sin(kTwoPi * voice.phase);
            // Phases advance even for silent voices, so a voice fading in starts in step
            // with what any other worker would render.
            voice.phase += freq * inverseRate;
            if (voice.phase >= 1.0) voice.phase -= 1.0;
        }
        double sample = master * sum;
        if (sample > 1.0 || sample < -1.0) {
            sample = sample > 1.0 ? 1.0 : -1.0;
            ++stats.clipped;
        }
        for (uint32_t c = 0; c < channels; ++c) out[frame * channels + c] = static_cast<float>(sample);
    }
    state.frame += frames;
    return stats;
}

RenderStats renderBlock(RenderState& state, uint32_t voices, double sampleRate, float* out, uint32_t channels,
                        uint32_t frames) noexcept {
    const RenderStats stats = renderFrames(state, voices, sampleRate, out, channels, frames);
    state.blocks += 1;
    return stats;
}

}  // namespace sustain
