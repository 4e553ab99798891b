// Unit tests of the tone checker on synthetic signals: what a clean engine renders (ramps
// of gain and frequency over 10 ms) must pass with a wide margin, and every way a sample
// stream can break (one bad sample, a repeated, dropped or zeroed block, a gap) must be
// found at the sample where it happens.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "tools/audio/signal_check.h"

using namespace sustain::audio;

namespace {

constexpr double kRate = 48000.0;
constexpr double kTwoPi = 6.283185307179586;
constexpr std::size_t kRamp = 480;  // 10 ms at 48 kHz, the engine's smoothing time

// One piece of a test tone: gain and frequency ramp linearly from *From to *To over
// `frames` samples, as the engine's smoothing does.
struct Piece {
    std::size_t frames;
    double gainFrom, gainTo;
    double freqFrom, freqTo;
};

// Renders pieces with a continuous phase (a phase accumulator, as an oscillator has).
std::vector<float> render(const std::vector<Piece>& pieces, double phase = 0.3) {
    std::vector<float> out;
    for (const Piece& p : pieces) {
        for (std::size_t i = 0; i < p.frames; ++i) {
            const double t = static_cast<double>(i) / static_cast<double>(p.frames);
            const double gain = p.gainFrom + (p.gainTo - p.gainFrom) * t;
            const double freq = p.freqFrom + (p.freqTo - p.freqFrom) * t;
            out.push_back(static_cast<float>(gain * std::sin(phase)));
            phase += kTwoPi * freq / kRate;
            if (phase > kTwoPi) phase -= kTwoPi;
        }
    }
    return out;
}

Piece hold(std::size_t frames, double gain, double freq) { return {frames, gain, gain, freq, freq}; }
Piece silence(std::size_t frames) { return {frames, 0.0, 0.0, 440.0, 440.0}; }

// A realistic test tone: silence, fade in, steady, fade out, silence.
std::vector<float> steadyTone(double freq, double gain, std::size_t steadyFrames = 24000) {
    return render({silence(1000), {kRamp, 0.0, gain, freq, freq}, hold(steadyFrames, gain, freq),
                   {kRamp, gain, 0.0, freq, freq}, silence(1000)});
}

void requireClean(const std::vector<float>& x, double margin = 0.003) {
    const CheckReport r = checkSignal(x);
    REQUIRE(r.onset.has_value());
    CHECK(r.damagedSamples == 0);
    CHECK_FALSE(r.firstDamaged.has_value());
    CHECK(r.gaps == 0);
    CHECK(r.maxResidual < margin);
    CHECK(r.judgedSamples > x.size() / 2);
}

// Applies `defect` at position m of a clean steady tone and checks that the first damaged
// sample is exactly m and, for a single-sample defect, that the damage does not spread.
void requireDetectedAt(const char* name, std::size_t m,
                       const std::function<std::vector<float>(const std::vector<float>&, std::size_t)>& defect,
                       std::size_t maxDamaged, double freq = 440.0) {
    const std::vector<float> clean = steadyTone(freq, 0.5);
    const std::vector<float> bad = defect(clean, m);
    CAPTURE(name);
    CAPTURE(m);
    CAPTURE(freq);
    const CheckReport r = checkSignal(bad);
    REQUIRE(r.firstDamaged.has_value());
    CHECK(*r.firstDamaged == m);
    CHECK(r.damagedSamples >= 1);
    CHECK(r.damagedSamples <= maxDamaged);
}

// Positions in the steady part where the tone is at least half its amplitude, so that a
// zeroed or flipped sample is a real change (at a zero crossing it would be none).
std::vector<std::size_t> loudPositions(const std::vector<float>& x, std::size_t count) {
    std::vector<std::size_t> out;
    for (std::size_t i = 5000; i < x.size() && out.size() < count; i += 997) {
        std::size_t j = i;
        while (std::fabs(x[j]) < 0.25f) ++j;
        out.push_back(j);
    }
    return out;
}

}  // namespace

TEST_CASE("onset: first sample above the threshold") {
    std::vector<float> x(100, 0.0f);
    x[40] = 5e-5f;  // below the default 1e-4
    x[57] = -2e-4f;
    CHECK(findOnset(x, 1e-4) == std::optional<std::size_t>(57));
    CHECK_FALSE(findOnset(std::vector<float>(10, 0.0f), 1e-4).has_value());
    const CheckReport r = checkSignal(steadyTone(440.0, 0.5));
    REQUIRE(r.onset.has_value());
    CHECK(*r.onset >= 1000);
    CHECK(*r.onset < 1010);  // 1e-4 of 0.5 is reached within the first samples of the fade
}

TEST_CASE("clean sine passes") {
    for (double freq : {50.0, 440.0, 660.0, 1000.0, 5000.0}) {
        CAPTURE(freq);
        // Starts mid-tone at sample 0: nothing before it to contradict.
        requireClean(render({hold(48000, 0.5, freq)}), 1e-4);
        requireClean(render({hold(48000, 0.001, freq)}), 1e-4);
    }
}

TEST_CASE("gain ramp 0 -> 0.5 over 480 samples passes") {
    for (double freq : {440.0, 660.0, 5000.0}) {
        CAPTURE(freq);
        requireClean(steadyTone(freq, 0.5));
        requireClean(steadyTone(freq, 1.0));
        requireClean(steadyTone(freq, 0.01));
    }
    // A ramp between two levels mid-tone, up and down.
    requireClean(render({hold(10000, 0.2, 440.0), {kRamp, 0.2, 0.8, 440.0, 440.0},
                         hold(10000, 0.8, 440.0), {kRamp, 0.8, 0.1, 440.0, 440.0}, hold(10000, 0.1, 440.0)}));
}

TEST_CASE("frequency ramp 440 -> 660 over 480 samples with continuous phase passes") {
    requireClean(render({hold(10000, 0.5, 440.0), {kRamp, 0.5, 0.5, 440.0, 660.0},
                         hold(10000, 0.5, 660.0), {kRamp, 0.5, 0.5, 660.0, 440.0}, hold(10000, 0.5, 440.0)}),
                 1e-3);
    // Gain and frequency ramping together, and a fade-in while the frequency moves.
    requireClean(render({silence(500), {kRamp, 0.0, 0.5, 440.0, 660.0}, hold(10000, 0.5, 660.0),
                         {kRamp, 0.5, 1.0, 660.0, 440.0}, hold(10000, 1.0, 440.0),
                         {kRamp, 1.0, 0.0, 440.0, 880.0}, silence(500)}));
}

TEST_CASE("an abrupt start from silence is a click, and is reported at the onset") {
    const std::vector<float> x = render({silence(1000), hold(10000, 0.5, 440.0)}, 1.0);
    const CheckReport r = checkSignal(x);
    REQUIRE(r.firstDamaged.has_value());
    CHECK(*r.firstDamaged == 1000);
    CHECK(r.maxStep > 0.4);
}

TEST_CASE("single-sample defects are detected at their sample, without spreading") {
    const std::vector<float> clean = steadyTone(440.0, 0.5);
    for (std::size_t m : loudPositions(clean, 6)) {
        requireDetectedAt("flipped", m, [](std::vector<float> x, std::size_t at) {
            x[at] = -x[at];
            return x;
        }, 3);
        requireDetectedAt("zeroed", m, [](std::vector<float> x, std::size_t at) {
            x[at] = 0.0f;
            return x;
        }, 3);
        requireDetectedAt("shifted by 0.02", m, [](std::vector<float> x, std::size_t at) {
            x[at] += 0.02f;
            return x;
        }, 3);
    }
    // A lost or doubled single sample moves the phase; it shows where the slope is steep.
    for (std::size_t m : {6000u, 9000u, 13000u}) {
        std::size_t at = m;
        while (!(clean[at - 1] < 0.0f && clean[at] >= 0.0f)) ++at;  // a rising zero crossing
        requireDetectedAt("one sample dropped", at, [](std::vector<float> x, std::size_t i) {
            x.erase(x.begin() + static_cast<std::ptrdiff_t>(i));
            return x;
        }, 3);
        requireDetectedAt("one sample repeated", at, [](std::vector<float> x, std::size_t i) {
            x.insert(x.begin() + static_cast<std::ptrdiff_t>(i), x[i - 1]);
            return x;
        }, 3);
    }
}

TEST_CASE("block defects of 64 samples are detected at their first sample") {
    const std::vector<float> clean = steadyTone(440.0, 0.5);
    for (double freq : {440.0, 660.0, 1000.0}) {
        const std::vector<float> tone = steadyTone(freq, 0.5);
        for (std::size_t m : loudPositions(tone, 4)) {
            requireDetectedAt("repeated block inserted", m, [](std::vector<float> x, std::size_t at) {
                std::vector<float> block(x.begin() + static_cast<std::ptrdiff_t>(at - 64),
                                         x.begin() + static_cast<std::ptrdiff_t>(at));
                x.insert(x.begin() + static_cast<std::ptrdiff_t>(at), block.begin(), block.end());
                return x;
            }, 200, freq);
            requireDetectedAt("repeated block replacing", m, [](std::vector<float> x, std::size_t at) {
                for (std::size_t i = 0; i < 64; ++i) x[at + i] = x[at - 64 + i];
                return x;
            }, 200, freq);
            requireDetectedAt("block dropped", m, [](std::vector<float> x, std::size_t at) {
                x.erase(x.begin() + static_cast<std::ptrdiff_t>(at),
                        x.begin() + static_cast<std::ptrdiff_t>(at + 64));
                return x;
            }, 200, freq);
            requireDetectedAt("block of zeros", m, [](std::vector<float> x, std::size_t at) {
                for (std::size_t i = 0; i < 64; ++i) x[at + i] = 0.0f;
                return x;
            }, 200, freq);
        }
    }
}

TEST_CASE("defects during ramps are detected too") {
    const std::vector<float> gainRamp = render({silence(1000), {kRamp, 0.0, 0.5, 440.0, 440.0}, hold(5000, 0.5, 440.0)});
    const std::vector<float> freqRamp = render({hold(5000, 0.5, 440.0), {kRamp, 0.5, 0.5, 440.0, 660.0}, hold(5000, 0.5, 660.0)});
    for (const auto* clean : {&gainRamp, &freqRamp}) {
        std::vector<float> x = *clean;
        std::size_t at = clean == &gainRamp ? 1300 : 5200;
        while (std::fabs(x[at]) < 0.1f) ++at;
        x[at] = -x[at];
        const CheckReport r = checkSignal(x);
        REQUIRE(r.firstDamaged.has_value());
        CHECK(*r.firstDamaged == at);
        CHECK(r.damagedSamples <= 3);
    }
}

TEST_CASE("gaps: silent runs between sounds are counted; the final fade is not a gap") {
    SUBCASE("a hard gap of 200 samples") {
        std::vector<float> x = render({hold(10000, 0.5, 440.0)});
        for (std::size_t i = 4000; i < 4200; ++i) x[i] = 0.0f;
        const CheckReport r = checkSignal(x);
        CHECK(r.gaps == 1);
        CHECK(r.gapSamples == 200);
        CHECK(r.firstGap == std::optional<std::size_t>(4000));
        CHECK(r.damagedSamples > 0);  // its edges are clicks as well
    }
    SUBCASE("a faded gap is still a gap, though it is not damage") {
        const std::vector<float> x = render({hold(5000, 0.5, 440.0), {kRamp, 0.5, 0.0, 440.0, 440.0},
                                             silence(1000), {kRamp, 0.0, 0.5, 440.0, 440.0},
                                             hold(5000, 0.5, 440.0)});
        const CheckReport r = checkSignal(x);
        CHECK(r.gaps == 1);
        CHECK(r.gapSamples >= 1000);
        CHECK(r.gapSamples < 1010);
        CHECK(r.damagedSamples == 0);
    }
    SUBCASE("two gaps; a run shorter than 16 is no gap") {
        std::vector<float> x = render({hold(10000, 0.5, 440.0)});
        for (std::size_t i = 2000; i < 2015; ++i) x[i] = 0.0f;  // 15: too short
        for (std::size_t i = 5000; i < 5016; ++i) x[i] = 0.0f;  // 16: a gap
        for (std::size_t i = 8000; i < 8100; ++i) x[i] = 0.0f;
        const CheckReport r = checkSignal(x);
        CHECK(r.gaps == 2);
        CHECK(r.gapSamples == 116);
    }
    SUBCASE("fade to silence at the end") {
        const CheckReport r = checkSignal(steadyTone(440.0, 0.5));
        CHECK(r.gaps == 0);
        CHECK(r.gapSamples == 0);
    }
}

TEST_CASE("max step reports the largest jump after the onset") {
    std::vector<float> x = render({hold(10000, 0.5, 440.0)});
    const CheckReport clean = checkSignal(x);
    CHECK(clean.maxStep == doctest::Approx(0.5 * kTwoPi * 440.0 / kRate).epsilon(0.01));
    x[3000] = 0.9f;
    const CheckReport bad = checkSignal(x);
    CHECK(bad.maxStep > 0.5);
    CHECK((bad.maxStepIndex == 3000 || bad.maxStepIndex == 3001));
}

TEST_CASE("frequency and amplitude estimates are accurate over 0.5 s") {
    for (double freq : {97.5, 440.0, 441.37, 659.99, 1000.2, 4321.0}) {
        for (double amp : {0.01, 0.3, 0.9}) {
            CAPTURE(freq);
            CAPTURE(amp);
            const std::vector<float> x = render({hold(24000, amp, freq)}, 2.0);
            const ToneEstimate t = estimateTone(x, kRate);
            REQUIRE(t.valid);
            CHECK(std::fabs(t.freqHz - freq) < 0.01);
            CHECK(std::fabs(t.amp - amp) < 0.002 * amp);
        }
    }
    const ToneEstimate none = estimateTone(std::vector<float>(1000, 0.0f), kRate);
    CHECK_FALSE(none.valid);
    CHECK(none.amp == 0.0);
}

TEST_CASE("a replayed or silent block does not move the frequency estimate") {
    // What a late driver timer does to a recording: one 64-frame block played twice, or a
    // block of silence. The tone is still 550 Hz; the damage is the per-sample checks' job.
    const std::vector<float> clean = render({hold(48000, 0.5, 550.0)});
    std::vector<float> replayed = clean;
    replayed.insert(replayed.begin() + 43008, clean.begin() + 42944, clean.begin() + 43008);
    std::vector<float> gap = clean;
    gap.insert(gap.begin() + 43008, 64, 0.0f);
    for (const std::vector<float>* x : {&replayed, &gap}) {
        const ToneEstimate t = estimateTone(*x, kRate);
        REQUIRE(t.valid);
        CHECK(std::fabs(t.freqHz - 550.0) < 0.01);
        CHECK(t.outlierPeriods >= 1);
        CHECK(t.outlierPeriods <= 2);
    }
}

TEST_CASE("expectations: parsing and judging windows relative to onset and end") {
    std::string error;
    const auto e = parseExpectation("0.1:-0.05:440:0.5", error);
    REQUIRE(e.has_value());
    CHECK(e->startS == 0.1);
    CHECK(e->endS == -0.05);
    CHECK_FALSE(parseExpectation("0.1:0.2:440", error).has_value());
    CHECK(error.find("START:END:FREQ:AMP") != std::string::npos);
    CHECK_FALSE(parseExpectation("0.1:x:440:0.5", error).has_value());
    CHECK(error.find("END") != std::string::npos);
    CHECK_FALSE(parseExpectation("0.1:0.2:440:-1", error).has_value());

    // 0.5 s at 440 Hz, then 0.5 s at 660 Hz and gain 0.25.
    const std::vector<float> x = render({silence(4800), {kRamp, 0.0, 0.5, 440.0, 440.0}, hold(24000, 0.5, 440.0),
                                         {kRamp, 0.5, 0.25, 440.0, 660.0}, hold(24000, 0.25, 660.0)});
    const std::size_t onset = *findOnset(x, 1e-4);
    const Tolerances tol;
    const WindowResult first = checkExpectation(x, kRate, onset, {0.05, 0.45, 440.0, 0.5}, tol);
    CHECK(first.ok);
    CHECK(first.tone.freqHz == doctest::Approx(440.0).epsilon(1e-4));
    const WindowResult last = checkExpectation(x, kRate, onset, {-0.4, -0.0, 660.0, 0.25}, tol);
    CHECK(last.ok);
    CHECK(last.end == x.size());
    const WindowResult wrongFreq = checkExpectation(x, kRate, onset, {-0.4, -0.0, 662.0, 0.25}, tol);
    CHECK_FALSE(wrongFreq.ok);
    CHECK(wrongFreq.problem.find("freq") != std::string::npos);
    const WindowResult wrongAmp = checkExpectation(x, kRate, onset, {0.05, 0.45, 440.0, 0.52}, tol);
    CHECK_FALSE(wrongAmp.ok);
    CHECK(wrongAmp.problem.find("amp") != std::string::npos);
    const WindowResult outside = checkExpectation(x, kRate, onset, {0.5, 5.0, 440.0, 0.5}, tol);
    CHECK_FALSE(outside.ok);
    const WindowResult quiet = checkExpectation(render({silence(2000), hold(1000, 0.5, 440.0)}), kRate, 2000,
                                                {-0.0625, -0.021, 0.0, 0.0}, tol);
    CHECK(quiet.ok);
}
