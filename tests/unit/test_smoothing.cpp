// Every change is a ramp: a gain step and a frequency jump produce no click. The bound: a
// sine of amplitude A at frequency f moves at most A·2πf/rate per sample; a ramp of R
// samples adds at most Δgain/R. Anything above that is a discontinuity.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "engine/rt/synth.h"

using namespace sustain;

namespace {
constexpr double kRate = 48000.0;
constexpr uint32_t kRamp = 480;  // 10 ms

double maxStep(const std::vector<float>& samples, size_t from = 1) {
    double worst = 0.0;
    for (size_t i = std::max<size_t>(from, 1); i < samples.size(); ++i)
        worst = std::max(worst, std::fabs(static_cast<double>(samples[i]) - samples[i - 1]));
    return worst;
}

std::vector<float> render(RenderState& state, uint32_t frames) {
    std::vector<float> out(frames);
    for (uint32_t done = 0; done < frames; done += 64) renderBlock(state, 4, kRate, out.data() + done, 1, 64);
    return out;
}
}  // namespace

TEST_CASE("smoothing: a master gain step from 0 to 1 has no jump above the bound") {
    RenderState state;
    initialRenderState(state, 0.0);
    auto before = render(state, 640);
    for (float s : before) CHECK(s == 0.0f);  // starts silent: never a blast
    applyParam(state, kParamMasterGain, 1.0, kRamp);
    std::vector<float> out = {before.back()};
    const auto after = render(state, 4800);
    out.insert(out.end(), after.begin(), after.end());
    const double bound = 2.0 * std::numbers::pi * 440.0 / kRate + 1.0 / kRamp + 1e-6;
    CHECK(maxStep(out) <= bound);
    // and the tone does arrive at full amplitude
    float peak = 0;
    for (size_t i = out.size() - 480; i < out.size(); ++i) peak = std::max(peak, std::fabs(out[i]));
    CHECK(peak == doctest::Approx(1.0).epsilon(0.01));
}

TEST_CASE("smoothing: a frequency jump 440 → 4000 Hz keeps the phase continuous") {
    RenderState state;
    initialRenderState(state, 0.5);
    auto out = render(state, 960);
    applyParam(state, voiceFreqParam(0), 4000.0, kRamp);
    const auto after = render(state, 4800);
    out.insert(out.end(), after.begin(), after.end());
    const double bound = 0.5 * 2.0 * std::numbers::pi * 4000.0 / kRate + 1e-6;
    CHECK(maxStep(out) <= bound);
    // Second difference bounded too: no kink where the ramp starts.
    double worstCurvature = 0;
    for (size_t i = 2; i < out.size(); ++i)
        worstCurvature = std::max(worstCurvature, std::fabs(double(out[i]) - 2.0 * out[i - 1] + out[i - 2]));
    const double w = 2.0 * std::numbers::pi * 4000.0 / kRate;
    CHECK(worstCurvature <= 0.5 * w * w + 1e-4);
}

TEST_CASE("smoothing: a ramp ends exactly on its target and a retarget mid-ramp starts from where it is") {
    Ramp ramp{};
    rampSet(ramp, 0.0);
    rampTo(ramp, 1.0, 4);
    CHECK(rampNext(ramp) == doctest::Approx(0.25));
    CHECK(rampNext(ramp) == doctest::Approx(0.5));
    rampTo(ramp, 0.0, 2);  // retarget from 0.5
    CHECK(rampNext(ramp) == doctest::Approx(0.25));
    CHECK(rampNext(ramp) == 0.0);
    CHECK(ramp.remaining == 0);
    CHECK(rampNext(ramp) == 0.0);
}

TEST_CASE("rendering is deterministic: the same state renders the same samples") {
    RenderState a;
    initialRenderState(a, 0.7);
    applyParam(a, voiceGainParam(1), 0.3, kRamp);
    render(a, 1024);
    RenderState b = a;  // what a standby would copy from the published state
    const auto x = render(a, 6400);
    const auto y = render(b, 6400);
    CHECK(x == y);
}

TEST_CASE("clipping is clamped and counted, never wrapped") {
    RenderState state;
    initialRenderState(state, 1.0);
    for (uint32_t v = 0; v < 4; ++v) applyParam(state, voiceGainParam(v), 1.0, 0);
    for (uint32_t v = 0; v < 4; ++v) applyParam(state, voiceFreqParam(v), 100.0, 0);
    std::vector<float> out(64);
    uint32_t clipped = 0;
    for (int block = 0; block < 100; ++block) clipped += renderBlock(state, 4, kRate, out.data(), 1, 64).clipped;
    CHECK(clipped > 0);
    for (float s : out) CHECK(std::fabs(s) <= 1.0f);
}
