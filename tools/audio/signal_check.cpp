#include "tools/audio/signal_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace sustain::audio {

namespace {

constexpr double kSqrt2 = 1.4142135623730951;

// Least-squares estimate of c = 2cos(w) from the recurrence terms k in [lo, hi]:
// c = sum((x[k]+x[k-2])*x[k-1]) / sum(x[k-1]^2). Summed directly rather than from prefix
// sums: a prefix sum over minutes of loud tone loses the precision a quiet passage needs.
struct CEstimate {
    bool valid = false;
    double c = 0.0;
};

CEstimate estimateC(std::span<const float> x, std::size_t lo, std::size_t hi, double minEnergy) {
    double num = 0.0;
    double den = 0.0;
    for (std::size_t k = lo; k <= hi; ++k) {
        const double prev = x[k - 1];
        num += (static_cast<double>(x[k]) + static_cast<double>(x[k - 2])) * prev;
        den += prev * prev;
    }
    if (!(den > minEnergy)) return {};
    return {true, num / den};
}

// Sliding maximum of `values` over [n - half, n + half] for every n, in O(n) with a
// monotonic queue of indices (values decreasing from front to back).
std::vector<double> slidingMax(const std::vector<double>& values, std::size_t half) {
    const std::size_t n = values.size();
    std::vector<double> out(n, 0.0);
    std::vector<std::size_t> queue(n + 1);
    std::size_t head = 0;
    std::size_t tail = 0;
    std::size_t next = 0;  // next index to enter the queue
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t hiIndex = std::min(n - 1, i + half);
        while (next <= hiIndex) {
            while (tail > head && values[queue[tail - 1]] <= values[next]) --tail;
            queue[tail++] = next++;
        }
        const std::size_t loIndex = i >= half ? i - half : 0;
        while (queue[head] < loIndex) ++head;
        out[i] = values[queue[head]];
    }
    return out;
}

bool parseDouble(std::string_view text, double& out) {
    const std::string s(text);
    if (s.empty()) return false;
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && std::isfinite(out);
}

template <typename... Args>
std::string format(const char* fmt, Args... args) {
    char buffer[200];
    std::snprintf(buffer, sizeof buffer, fmt, args...);
    return buffer;
}

}  // namespace

std::optional<std::size_t> findOnset(std::span<const float> x, double threshold) noexcept {
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (std::fabs(static_cast<double>(x[i])) > threshold) return i;
    }
    return std::nullopt;
}

std::vector<double> localAmplitude(std::span<const float> x, std::size_t window) {
    const std::size_t n = x.size();
    const std::size_t half = std::max<std::size_t>(window / 2, 1);
    std::vector<double> prefix(n + 1, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        prefix[i + 1] = prefix[i] + static_cast<double>(x[i]) * static_cast<double>(x[i]);
    }
    std::vector<double> amp(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t lo = i >= half ? i - half : 0;
        const std::size_t hi = std::min(n, i + half);  // exclusive
        // Clamp: rounding in the prefix sums can leave a tiny negative energy in silence.
        const double energy = std::max(0.0, prefix[hi] - prefix[lo]);
        amp[i] = std::sqrt(energy / static_cast<double>(hi - lo)) * kSqrt2;
    }
    return amp;
}

std::vector<double> normalisedResiduals(std::span<const float> x, const CheckOptions& options) {
    const std::size_t n = x.size();
    const std::size_t w = std::max<std::size_t>(options.window, 8);
    std::vector<double> out(n, -1.0);
    if (n < 3) return out;

    const std::vector<double> local = localAmplitude(x, w);
    const std::vector<double> reference = slidingMax(local, options.refHalfWidth);
    // A side whose window holds almost no energy (silence before the onset) cannot say
    // anything about c; a quarter of the silence level's energy is the floor.
    const double minEnergy = static_cast<double>(w) * options.silenceAmp * options.silenceAmp / 8.0;
    const std::size_t minTerms = w / 2;

    for (std::size_t i = 2; i < n; ++i) {
        if (local[i] < options.silenceAmp || reference[i] <= 0.0) continue;
        const double r0 = static_cast<double>(x[i]) + static_cast<double>(x[i - 2]);
        const double prev = x[i - 1];
        double best = -1.0;
        // Left: terms k in [i-w, i-1], which involve x[i-w-2 .. i-1] only.
        if (i >= 2 + minTerms) {
            const std::size_t lo = i >= w + 2 ? i - w : 2;
            const CEstimate left = estimateC(x, lo, i - 1, minEnergy);
            if (left.valid) best = std::fabs(r0 - left.c * prev);
        }
        // Right: terms k in [i+3, i+w+2], which involve x[i+1 ..] only.
        if (i + 3 + minTerms <= n) {
            const std::size_t hi = std::min(n - 1, i + w + 2);
            const CEstimate right = estimateC(x, i + 3, hi, minEnergy);
            if (right.valid) {
                const double r = std::fabs(r0 - right.c * prev);
                best = best < 0.0 ? r : std::min(best, r);
            }
        }
        if (best >= 0.0) out[i] = best / reference[i];
    }
    return out;
}

CheckReport checkSignal(std::span<const float> x, const CheckOptions& options) {
    CheckReport report;
    const std::size_t n = x.size();
    report.onset = findOnset(x, options.onsetThreshold);
    if (!report.onset) return report;
    const std::size_t onset = *report.onset;
    for (std::size_t i = n; i-- > onset;) {
        if (std::fabs(static_cast<double>(x[i])) > options.onsetThreshold) {
            report.lastSound = i;
            break;
        }
    }

    const std::vector<double> residual = normalisedResiduals(x, options);
    for (std::size_t i = 0; i < n; ++i) {
        const double r = residual[i];
        if (r < 0.0) continue;
        ++report.judgedSamples;
        if (r > report.maxResidual) {
            report.maxResidual = r;
            report.maxResidualIndex = i;
        }
        if (r > options.residualThreshold) {
            addToEvents(report.events, i, i, 1, 0, options.eventMerge);
            ++report.damagedSamples;
            if (!report.firstDamaged) report.firstDamaged = i;
            if (report.damaged.size() < options.keepDamaged) report.damaged.push_back(i);
        }
    }

    for (std::size_t i = std::max<std::size_t>(onset, 1); i < n; ++i) {
        const double step = std::fabs(static_cast<double>(x[i]) - static_cast<double>(x[i - 1]));
        if (step > report.maxStep) {
            report.maxStep = step;
            report.maxStepIndex = i;
        }
    }

    // Gaps: digital silence between the onset and the last sound. Silence after the last
    // sound is the final fade (or the end of the test), not a gap.
    const std::size_t last = *report.lastSound;
    std::size_t run = 0;
    for (std::size_t i = onset; i <= last; ++i) {
        if (std::fabs(static_cast<double>(x[i])) < options.gapLevel) {
            ++run;
            continue;
        }
        if (run >= options.gapMinRun) {
            addToEvents(report.events, i - run, i - 1, 0, run, options.eventMerge);
            ++report.gaps;
            report.gapSamples += run;
            if (!report.firstGap) report.firstGap = i - run;
        }
        run = 0;
    }
    return report;
}

void addToEvents(std::vector<DamageEvent>& events, std::size_t start, std::size_t end, std::size_t damaged,
                 std::size_t gapSamples, std::size_t merge) {
    // Damage is found in index order, gaps after it in a second pass: find the event this
    // stretch belongs to, or insert a new one in order.
    for (DamageEvent& event : events) {
        if (start <= event.end + merge && end + merge >= event.start) {
            event.start = std::min(event.start, start);
            event.end = std::max(event.end, end);
            event.damaged += damaged;
            event.gapSamples += gapSamples;
            return;
        }
    }
    DamageEvent event{start, end, damaged, gapSamples};
    events.insert(std::lower_bound(events.begin(), events.end(), event,
                                   [](const DamageEvent& a, const DamageEvent& b) { return a.start < b.start; }),
                  event);
}

ToneEstimate estimateTone(std::span<const float> x, double sampleRate) {
    ToneEstimate tone;
    if (x.empty()) return tone;
    double peak = 0.0;
    double energy = 0.0;
    for (float v : x) {
        peak = std::max(peak, std::fabs(static_cast<double>(v)));
        energy += static_cast<double>(v) * static_cast<double>(v);
    }
    tone.amp = std::sqrt(energy / static_cast<double>(x.size())) * kSqrt2;
    if (peak <= 0.0) return tone;

    // Hysteresis: a rising crossing counts only after the signal has been below -h since the
    // last one, so noise around zero cannot add crossings.
    const double h = 0.1 * peak;
    bool armed = false;
    std::vector<double> crossings;
    crossings.reserve(x.size() / 8 + 2);
    for (std::size_t i = 1; i < x.size(); ++i) {
        const double a = x[i - 1];
        const double b = x[i];
        if (a < -h) armed = true;
        if (armed && a < 0.0 && b >= 0.0) {
            crossings.push_back(static_cast<double>(i - 1) + a / (a - b));
            armed = false;
        }
    }
    if (crossings.size() < 2 || !(crossings.back() > crossings.front())) return tone;
    const double first = crossings.front();
    const double last = crossings.back();

    // The frequency is what the tone is, not what a glitch did to it: a period the driver
    // played twice or a silent block stretches one or two crossing intervals, which would
    // move a plain (last - first) estimate by a few Hz. So the estimate averages only the
    // intervals within 2 % of the median interval; damage is judged by the per-sample checks.
    std::vector<double> intervals(crossings.size() - 1);
    for (std::size_t i = 1; i < crossings.size(); ++i) intervals[i - 1] = crossings[i] - crossings[i - 1];
    std::vector<double> sorted = intervals;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2), sorted.end());
    const double median = sorted[sorted.size() / 2];
    double sum = 0.0;
    std::size_t kept = 0;
    for (double d : intervals) {
        if (std::fabs(d - median) <= 0.02 * median) {
            sum += d;
            ++kept;
        }
    }
    if (kept == 0 || !(sum > 0.0)) return tone;

    tone.valid = true;
    tone.periods = crossings.size() - 1;
    tone.outlierPeriods = tone.periods - kept;
    tone.freqHz = static_cast<double>(kept) * sampleRate / sum;
    // Amplitude over whole periods only: a partial period biases the RMS of a sine.
    const auto begin = static_cast<std::size_t>(std::ceil(first));
    const auto end = std::min(x.size(), static_cast<std::size_t>(std::ceil(last)));
    double periodEnergy = 0.0;
    for (std::size_t i = begin; i < end; ++i) {
        periodEnergy += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    }
    if (end > begin) tone.amp = std::sqrt(periodEnergy / static_cast<double>(end - begin)) * kSqrt2;
    return tone;
}

std::optional<Expectation> parseExpectation(std::string_view text, std::string& error) {
    std::vector<std::string_view> parts;
    std::size_t from = 0;
    while (true) {
        const std::size_t colon = text.find(':', from);
        parts.push_back(text.substr(from, colon == std::string_view::npos ? colon : colon - from));
        if (colon == std::string_view::npos) break;
        from = colon + 1;
    }
    if (parts.size() != 4) {
        error = "expectation \"" + std::string(text) + "\": expected START:END:FREQ:AMP, got " +
                std::to_string(parts.size()) + " fields";
        return std::nullopt;
    }
    double v[4];
    static const char* const kNames[4] = {"START", "END", "FREQ", "AMP"};
    for (int i = 0; i < 4; ++i) {
        if (!parseDouble(parts[static_cast<std::size_t>(i)], v[i])) {
            error = "expectation \"" + std::string(text) + "\": " + kNames[i] + " \"" +
                    std::string(parts[static_cast<std::size_t>(i)]) + "\" is not a finite number";
            return std::nullopt;
        }
    }
    if (v[3] < 0.0) {
        error = "expectation \"" + std::string(text) + "\": AMP must be >= 0";
        return std::nullopt;
    }
    return Expectation{v[0], v[1], v[2], v[3]};
}

WindowResult checkExpectation(std::span<const float> x, double sampleRate, std::size_t onset,
                              const Expectation& expected, const Tolerances& tolerances) {
    WindowResult result;
    result.expected = expected;
    const double onsetS = static_cast<double>(onset) / sampleRate;
    const double fileS = static_cast<double>(x.size()) / sampleRate;
    // Negative (including -0) counts back from the end of the file; signbit sees -0.
    auto absolute = [&](double t) { return std::signbit(t) ? fileS + t : onsetS + t; };
    const double startAbs = absolute(expected.startS);
    const double endAbs = absolute(expected.endS);
    result.startS = startAbs - onsetS;
    result.endS = endAbs - onsetS;
    auto toIndex = [&](double t) {
        const double i = std::round(t * sampleRate);
        if (i <= 0.0) return std::size_t{0};
        return std::min(x.size(), static_cast<std::size_t>(i));
    };
    result.begin = toIndex(startAbs);
    result.end = toIndex(endAbs);
    if (startAbs < 0.0 || endAbs > fileS + 0.5 / sampleRate || result.end <= result.begin) {
        result.problem = format("window %.6f..%.6f s after onset is empty or outside the file (%.6f s)",
                                result.startS, result.endS, fileS - onsetS);
        return result;
    }
    result.tone = estimateTone(x.subspan(result.begin, result.end - result.begin), sampleRate);

    if (expected.amp == 0.0) {
        result.ok = result.tone.amp < tolerances.silenceAmp;
        if (!result.ok) {
            result.problem = format("amp %.6g, expected silence (< %.6g)", result.tone.amp,
                                    tolerances.silenceAmp);
        }
        return result;
    }
    if (!result.tone.valid) {
        result.problem = format("no tone found (amp %.6g), expected %.6g Hz at amp %.6g",
                                result.tone.amp, expected.freqHz, expected.amp);
        return result;
    }
    std::string problem;
    if (expected.freqHz > 0.0 &&
        !(std::fabs(result.tone.freqHz - expected.freqHz) <= tolerances.freqHz)) {
        problem = format("freq %.4f Hz, expected %.4f +- %.4f Hz", result.tone.freqHz,
                         expected.freqHz, tolerances.freqHz);
    }
    if (!(std::fabs(result.tone.amp - expected.amp) <= tolerances.ampRel * expected.amp)) {
        if (!problem.empty()) problem += "; ";
        problem += format("amp %.6g, expected %.6g +- %.6g", result.tone.amp, expected.amp,
                          tolerances.ampRel * expected.amp);
    }
    result.ok = problem.empty();
    result.problem = problem;
    return result;
}

}  // namespace sustain::audio
