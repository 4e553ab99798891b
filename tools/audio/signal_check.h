// Sample-exact judgement of a recorded test tone: one sine whose frequency and amplitude
// change only by slow linear ramps (the engine smooths every change over ~10 ms).
//
// The test is the sine recurrence x[n] = c*x[n-1] - x[n-2] with c = 2cos(w). A clean tone
// satisfies it to within a tiny residual even while it ramps; any lost, repeated, zeroed
// or altered sample breaks it at that very sample. No JACK here: pure functions on float
// arrays, so unit tests can feed synthetic signals and sustain-analyze can feed WAV files.
//
// Thread: every function here is pure (no shared state); call from any thread.
// RT-safe: no (they allocate); these are for offline analysis only.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sustain::audio {

/// Tunables of checkSignal(). Defaults suit a 48 kHz tone of 20 Hz..10 kHz at any level.
struct CheckOptions {
    double onsetThreshold = 1e-4;    // first |x| above this is the onset
    double silenceAmp = 1e-4;        // samples whose local amplitude is below are not judged
    double residualThreshold = 0.01; // normalised residual above this is a damaged sample
    std::size_t window = 64;         // samples per one-sided least-squares estimate of c
    std::size_t refHalfWidth = 1024; // reference amplitude: max local amplitude within ±this
    double gapLevel = 1e-6;          // |x| below this counts as digital silence for gaps
    std::size_t gapMinRun = 16;      // a silent run this long between sounds is a gap
    std::size_t keepDamaged = 0;     // how many damaged positions to list in the report
    std::size_t eventMerge = 2400;   // damage closer than this (50 ms at 48 kHz) is one event
};

/// A stretch of damage: damaged samples and gaps closer than CheckOptions::eventMerge
/// together (one fault of a failover test is one event).
struct DamageEvent {
    std::size_t start = 0;
    std::size_t end = 0;          // last damaged or silent sample
    std::size_t damaged = 0;      // damaged samples in it
    std::size_t gapSamples = 0;   // silent samples of gaps in it
};

/// What checkSignal() found. Indices are sample positions in the array given.
struct CheckReport {
    std::optional<std::size_t> onset;        // first |x| > onsetThreshold; none: all silent
    std::optional<std::size_t> lastSound;    // last |x| > onsetThreshold
    std::size_t judgedSamples = 0;           // samples loud enough to be judged
    std::size_t damagedSamples = 0;          // judged samples with residual > threshold
    std::optional<std::size_t> firstDamaged; // first of those
    std::vector<std::size_t> damaged;        // the first keepDamaged of those
    double maxResidual = 0.0;                // largest normalised residual seen
    std::size_t maxResidualIndex = 0;
    double maxStep = 0.0;                    // max |x[n]-x[n-1]| from the onset on
    std::size_t maxStepIndex = 0;
    std::size_t gaps = 0;                    // silent runs between onset and last sound
    std::size_t gapSamples = 0;              // their total length
    std::optional<std::size_t> firstGap;     // start of the first gap
    std::vector<DamageEvent> events;         // damage and gaps, clustered
};

/// Index of the first sample with |x| > threshold, if any.
/// Thread: any.  RT-safe: yes (no allocation), but O(n).
std::optional<std::size_t> findOnset(std::span<const float> x, double threshold) noexcept;

/// Local amplitude at every sample: RMS over a centred window of `window` samples, x sqrt(2)
/// (the peak of a sine with that RMS).
/// Thread: any.  RT-safe: no (allocates the result).
std::vector<double> localAmplitude(std::span<const float> x, std::size_t window);

/// Normalised recurrence residual at every sample; a negative value marks a sample that was
/// not judged (too quiet, or too close to the start). c is estimated by least squares over
/// `window` terms just before n and, separately, just after n (neither touches x[n]); the
/// smaller residual of the two counts, so a defect never spreads to its neighbours through a
/// corrupted estimate. The residual is divided by the largest local amplitude within
/// ±refHalfWidth, so the first samples of a fade-in from silence are judged against the
/// level the fade is heading to, not against their own near-zero amplitude.
/// Thread: any.  RT-safe: no (allocates).
std::vector<double> normalisedResiduals(std::span<const float> x, const CheckOptions& options);

/// Adds a damaged or silent stretch to the ordered list of events, merging with an event
/// closer than `merge` samples. Thread: any.  RT-safe: no.
void addToEvents(std::vector<DamageEvent>& events, std::size_t start, std::size_t end, std::size_t damaged,
                 std::size_t gapSamples, std::size_t merge);

/// Runs every per-sample check (onset, residuals, steps, gaps) over a mono signal.
/// Thread: any.  RT-safe: no (allocates).
CheckReport checkSignal(std::span<const float> x, const CheckOptions& options = {});

/// Frequency and amplitude of a steady tone.
struct ToneEstimate {
    bool valid = false;    // false: fewer than two rising zero crossings (no tone found)
    double freqHz = 0.0;   // from interpolated rising zero crossings, glitched periods left out
    double amp = 0.0;      // RMS over the whole periods between those crossings, x sqrt(2)
    std::size_t periods = 0;
    std::size_t outlierPeriods = 0;  // crossing intervals more than 2 % off the median
};

/// Estimates frequency (interpolated rising zero crossings, with hysteresis against noise)
/// and amplitude of the tone in x. Without a tone, amp is the RMS of all of x times sqrt(2).
/// Thread: any.  RT-safe: no (allocates the crossing list).
ToneEstimate estimateTone(std::span<const float> x, double sampleRate);

/// One `--expect START:END:FREQ:AMP` window. Times are seconds after the onset; a negative
/// time (including -0) counts back from the end of the file.
struct Expectation {
    double startS = 0.0;
    double endS = 0.0;
    double freqHz = 0.0;   // <= 0: frequency not checked
    double amp = 0.0;      // 0: silence expected (measured amp below silenceAmp)
};

/// Parses "START:END:FREQ:AMP"; nullopt with `error` set when malformed.
/// Thread: any.  RT-safe: no.
std::optional<Expectation> parseExpectation(std::string_view text, std::string& error);

/// Tolerances for an expectation window.
struct Tolerances {
    double freqHz = 1.0;   // absolute
    double ampRel = 0.02;  // relative to the expected amplitude
    double silenceAmp = 1e-4;
};

/// The result of judging one expectation window.
struct WindowResult {
    Expectation expected;
    double startS = 0.0;   // resolved, seconds after the onset
    double endS = 0.0;
    std::size_t begin = 0; // resolved sample range [begin, end) in the file
    std::size_t end = 0;
    ToneEstimate tone;
    bool ok = false;
    std::string problem;   // empty when ok
};

/// Resolves the window against the onset and the file length, measures it and compares.
/// Thread: any.  RT-safe: no.
WindowResult checkExpectation(std::span<const float> x, double sampleRate, std::size_t onset,
                              const Expectation& expected, const Tolerances& tolerances);

}  // namespace sustain::audio
