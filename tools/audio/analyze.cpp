// sustain-analyze: judges a recorded test tone sample by sample (see signal_check.h) and
// checks expected frequency/amplitude windows. Exit 0: all checks passed; 1: a check
// failed; 2: usage or I/O error. The verdict never depends on the machine's speed.
#include <sndfile.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/audio/signal_check.h"
#include "sustain_version.h"

namespace {

using sustain::audio::CheckOptions;
using sustain::audio::CheckReport;
using sustain::audio::Expectation;
using sustain::audio::Tolerances;
using sustain::audio::WindowResult;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

struct Mono {
    std::vector<float> samples;
    double sampleRate = 0.0;
    int channels = 0;
};

// Reads one channel of any file libsndfile opens, as float. Returns false with `error` set.
bool readChannel(const std::string& path, int channel, Mono& out, std::string& error) {
    SF_INFO info{};
    SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
    if (file == nullptr) {
        error = "cannot open \"" + path + "\": " + sf_strerror(nullptr);
        return false;
    }
    out.sampleRate = info.samplerate;
    out.channels = info.channels;
    if (channel < 0 || channel >= info.channels) {
        error = "\"" + path + "\" has " + std::to_string(info.channels) + " channel(s); --channel " +
                std::to_string(channel) + " does not exist (channels count from 0)";
        sf_close(file);
        return false;
    }
    const auto channels = static_cast<std::size_t>(info.channels);
    const auto ch = static_cast<std::size_t>(channel);
    constexpr sf_count_t kChunkFrames = 65536;
    std::vector<float> chunk(static_cast<std::size_t>(kChunkFrames) * channels);
    out.samples.reserve(info.frames > 0 ? static_cast<std::size_t>(info.frames) : 0);
    while (true) {
        const sf_count_t got = sf_readf_float(file, chunk.data(), kChunkFrames);
        if (got <= 0) break;
        for (sf_count_t f = 0; f < got; ++f) out.samples.push_back(chunk[static_cast<std::size_t>(f) * channels + ch]);
    }
    sf_close(file);
    return true;
}

nlohmann::json optionalSeconds(const std::optional<std::size_t>& index, double rate) {
    if (!index) return nullptr;
    return static_cast<double>(*index) / rate;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Judges a recorded sustain test tone sample by sample: damage (sine recurrence "
                 "residual), gaps, clicks, and expected frequency/amplitude windows.\n"
                 "Exit 0: all OK; 1: a check failed; 2: usage or I/O error."};
    app.set_version_flag("--version", std::string("sustain-analyze ") + SUSTAIN_VERSION);
    std::string inPath;
    int channel = 0;
    bool json = false;
    std::vector<std::string> expectTexts;
    Tolerances tolerances;
    double maxStepBound = 0.0;
    std::size_t damageReport = 0;
    CheckOptions options;

    app.add_option("--in", inPath, "recorded WAV file (any format libsndfile reads)")->required();
    app.add_option("--channel", channel, "channel to judge, counting from 0")->capture_default_str();
    app.add_flag("--json", json, "print a JSON object with every result on stdout");
    app.add_option("--expect", expectTexts,
                   "START:END:FREQ:AMP window, seconds after the onset; a negative time (even -0) "
                   "counts from the end of the file; FREQ<=0: not checked; AMP 0: silence. "
                   "Repeatable. Write --expect=-1:-0:440:0.5 when START is negative.")
        ->take_all();
    app.add_option("--freq-tol", tolerances.freqHz, "frequency tolerance, Hz")->capture_default_str();
    app.add_option("--amp-tol", tolerances.ampRel, "amplitude tolerance, relative")->capture_default_str();
    CLI::Option* maxStepOption =
        app.add_option("--max-step", maxStepBound, "fail if any |x[n]-x[n-1]| after the onset exceeds this");
    app.add_option("--threshold", options.residualThreshold,
                   "normalised recurrence residual above which a sample is damaged")
        ->capture_default_str();
    app.add_option("--onset-threshold", options.onsetThreshold, "|x| above this marks the onset")
        ->capture_default_str();
    app.add_option("--silence", options.silenceAmp,
                   "local amplitude below which samples are not judged (and AMP 0 windows pass)")
        ->capture_default_str();
    app.add_option("--window", options.window, "samples per least-squares window")->capture_default_str();
    app.add_option("--gap-min", options.gapMinRun, "samples of |x|<1e-6 between sounds that make a gap")
        ->capture_default_str();
    app.add_option("--damage-report", damageReport, "list the first N damaged samples on stderr");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? kExitOk : kExitUsage;
    }
    tolerances.silenceAmp = options.silenceAmp;
    options.keepDamaged = damageReport;

    std::vector<Expectation> expectations;
    for (const std::string& text : expectTexts) {
        std::string error;
        const auto e = sustain::audio::parseExpectation(text, error);
        if (!e) {
            std::fprintf(stderr, "sustain-analyze: %s\n", error.c_str());
            return kExitUsage;
        }
        expectations.push_back(*e);
    }

    Mono mono;
    std::string error;
    if (!readChannel(inPath, channel, mono, error)) {
        std::fprintf(stderr, "sustain-analyze: %s\n", error.c_str());
        return kExitUsage;
    }
    const double rate = mono.sampleRate;
    const CheckReport report = sustain::audio::checkSignal(mono.samples, options);

    std::vector<std::string> problems;
    if (!report.onset) {
        char text[160];
        std::snprintf(text, sizeof text, "no sound: no sample above %.3g in %zu frames", options.onsetThreshold,
                      mono.samples.size());
        problems.emplace_back(text);
    }
    if (report.damagedSamples > 0) {
        char text[200];
        std::snprintf(text, sizeof text, "%zu damaged samples, first at %.6f s (index %zu), max residual %.4g",
                      report.damagedSamples, static_cast<double>(*report.firstDamaged) / rate,
                      *report.firstDamaged, report.maxResidual);
        problems.emplace_back(text);
    }
    if (report.gaps > 0) {
        char text[160];
        std::snprintf(text, sizeof text, "%zu gaps, %zu silent samples, first at %.6f s", report.gaps,
                      report.gapSamples, static_cast<double>(*report.firstGap) / rate);
        problems.emplace_back(text);
    }
    const bool stepBounded = maxStepOption->count() > 0;
    if (stepBounded && report.maxStep > maxStepBound) {
        char text[160];
        std::snprintf(text, sizeof text, "max step %.6g at %.6f s exceeds --max-step %.6g", report.maxStep,
                      static_cast<double>(report.maxStepIndex) / rate, maxStepBound);
        problems.emplace_back(text);
    }

    std::vector<WindowResult> windows;
    std::size_t windowsOk = 0;
    for (const Expectation& e : expectations) {
        WindowResult w;
        if (report.onset) {
            w = sustain::audio::checkExpectation(mono.samples, rate, *report.onset, e, tolerances);
        } else {
            w.expected = e;
            w.problem = "no onset to measure from";
        }
        if (w.ok) {
            ++windowsOk;
        } else {
            char text[320];
            std::snprintf(text, sizeof text, "window %.4g:%.4g (%.6f..%.6f s after onset): %s", e.startS, e.endS,
                          w.startS, w.endS, w.problem.c_str());
            problems.emplace_back(text);
        }
        windows.push_back(w);
    }
    const bool ok = problems.empty();

    for (std::size_t index : report.damaged) {
        const double t = static_cast<double>(index) / rate;
        const double afterOnset = t - static_cast<double>(report.onset.value_or(0)) / rate;
        std::fprintf(stderr, "sustain-analyze: damaged sample %zu at %.6f s (%.6f s after onset)\n", index, t,
                     afterOnset);
    }
    for (const std::string& p : problems) std::fprintf(stderr, "sustain-analyze: FAIL: %s\n", p.c_str());
    std::fprintf(stderr,
                 "sustain-analyze: %s ch%d: %zu frames at %.0f Hz, onset %s, %zu damaged (max residual %.3g), "
                 "max step %.4g, %zu gaps, %zu/%zu windows ok: %s\n",
                 inPath.c_str(), channel, mono.samples.size(), rate,
                 report.onset ? (std::to_string(static_cast<double>(*report.onset) / rate) + " s").c_str() : "none",
                 report.damagedSamples, report.maxResidual, report.maxStep, report.gaps, windowsOk,
                 windows.size(), ok ? "OK" : "FAILED");

    if (json) {
        nlohmann::json out;
        out["file"] = inPath;
        out["channel"] = channel;
        out["onset_s"] = optionalSeconds(report.onset, rate);
        out["frames"] = mono.samples.size();
        out["sample_rate"] = static_cast<int>(rate);
        out["judged_samples"] = report.judgedSamples;
        out["damaged_samples"] = report.damagedSamples;
        out["first_damaged_s"] = optionalSeconds(report.firstDamaged, rate);
        out["max_residual"] = report.maxResidual;
        out["max_residual_s"] = static_cast<double>(report.maxResidualIndex) / rate;
        out["threshold"] = options.residualThreshold;
        out["max_step"] = report.maxStep;
        out["max_step_s"] = static_cast<double>(report.maxStepIndex) / rate;
        out["max_step_bound"] = stepBounded ? nlohmann::json(maxStepBound) : nlohmann::json(nullptr);
        out["gaps"] = report.gaps;
        out["gap_samples"] = report.gapSamples;
        auto events = nlohmann::json::array();
        for (const auto& event : report.events)
            events.push_back({{"start_s", static_cast<double>(event.start) / rate},
                              {"end_s", static_cast<double>(event.end) / rate},
                              {"damaged", event.damaged},
                              {"gap_samples", event.gapSamples}});
        out["events"] = events;
        out["first_gap_s"] = optionalSeconds(report.firstGap, rate);
        nlohmann::json list = nlohmann::json::array();
        for (const WindowResult& w : windows) {
            list.push_back({{"start_s", w.startS},
                            {"end_s", w.endS},
                            {"freq_hz", w.tone.valid ? nlohmann::json(w.tone.freqHz) : nlohmann::json(nullptr)},
                            {"outlier_periods", w.tone.outlierPeriods},
                            {"amp", w.tone.amp},
                            {"expected_freq", w.expected.freqHz},
                            {"expected_amp", w.expected.amp},
                            {"ok", w.ok},
                            {"problem", w.problem}});
        }
        out["windows"] = list;
        out["problems"] = problems;
        out["ok"] = ok;
        std::printf("%s\n", out.dump().c_str());
    }
    return ok ? kExitOk : kExitFailed;
}
