// sustain-bench-metrics: prints one JSON snapshot of an engine's counters, histograms
// (with percentiles) and parameter table, read through a read-only mapping of its shared
// memory. With --since, also what changed since an earlier snapshot; with --wait-settled,
// first waits until the engine has processed everything it was sent.
//
// Exit: 0 snapshot printed; 1 the engine is not there or did not settle in time; 2 usage.
#include <cstdio>
#include <fstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "shm/clock.h"
#include "shm/segment.h"
#include "tools/benchmark/metrics_reader.h"
#include "sustain_version.h"

namespace {

constexpr auto kPollPeriod = std::chrono::milliseconds(10);

}  // namespace

int main(int argc, char** argv) {
    using namespace sustain;
    CLI::App app{"sustain-bench-metrics: one JSON snapshot of an engine's counters and latency histograms"};
    app.set_version_flag("--version", std::string("sustain-bench-metrics ") + SUSTAIN_VERSION);
    std::string instance = "default";
    std::string sincePath;
    double settleMs = 0.0;
    double timeoutS = 30.0;
    double waitReadyS = 0.0;
    bool pretty = false;
    app.add_option("--instance", instance, "engine instance")->capture_default_str();
    app.add_option("--since", sincePath, "an earlier snapshot (a file this program wrote): add its \"delta\"");
    app.add_option("--wait-settled", settleMs,
                   "first wait until nothing arrives, drains or applies for this many ms and the ring is empty");
    app.add_option("--timeout", timeoutS, "seconds to wait at most (--wait-settled, --wait-ready)")
        ->capture_default_str();
    app.add_option("--wait-ready", waitReadyS, "wait up to this many seconds for the segment and an active worker");
    app.add_flag("--pretty", pretty, "indent the JSON (default: one line)");
    CLI11_PARSE(app, argc, argv);

    bench::MetricsSnapshot since;
    const bool haveSince = !sincePath.empty();
    if (haveSince) {
        std::ifstream in(sincePath);
        if (!in) {
            std::fprintf(stderr, "sustain-bench-metrics: cannot read --since \"%s\"\n", sincePath.c_str());
            return 2;
        }
        try {
            since = bench::fromJson(nlohmann::json::parse(in));
        } catch (const nlohmann::json::exception& e) {
            std::fprintf(stderr, "sustain-bench-metrics: --since \"%s\" is not a snapshot: %s\n", sincePath.c_str(),
                         e.what());
            return 2;
        }
    }

    MappedSegment mapping;
    std::string detail;
    const uint64_t readyDeadline = monotonicNs() + static_cast<uint64_t>(waitReadyS * 1e9);
    for (;;) {
        const AttachError error = attachSegment(instance, true, mapping, &detail);
        const bool ready = error == AttachError::None && mapping->control.ready.load(std::memory_order_acquire) != 0 &&
                           mapping->slots[0].state.load(std::memory_order_acquire) ==
                               static_cast<uint32_t>(WorkerState::Active);
        if (ready || (error == AttachError::None && waitReadyS <= 0.0)) break;
        if (monotonicNs() >= readyDeadline) {
            if (error != AttachError::None)
                std::fprintf(stderr, "sustain-bench-metrics: %s\n", describe(error, instance, detail).c_str());
            else
                std::fprintf(stderr, "sustain-bench-metrics: instance \"%s\" has no active worker after %g s\n",
                             instance.c_str(), waitReadyS);
            return 1;
        }
        mapping.reset();
        std::this_thread::sleep_for(kPollPeriod);
    }

    const Segment& segment = mapping.get();
    bench::MetricsSnapshot snapshot = bench::readSnapshot(segment, instance);
    nlohmann::json settled;
    if (settleMs > 0.0) {
        const uint64_t start = monotonicNs();
        const uint64_t deadline = start + static_cast<uint64_t>(timeoutS * 1e9);
        const auto quietNs = static_cast<uint64_t>(settleMs * 1e6);
        uint64_t quietSince = start;
        bool done = false;
        while (!done && monotonicNs() < deadline) {
            std::this_thread::sleep_for(kPollPeriod);
            bench::MetricsSnapshot next = bench::readSnapshot(segment, instance);
            if (!bench::sameProgress(snapshot, next)) quietSince = next.takenNs;
            done = next.takenNs - quietSince >= quietNs && next.ringWriteIndex == next.ringReadIndex;
            snapshot = std::move(next);
        }
        settled = {{"settled", done},
                   {"waited_ms", static_cast<double>(monotonicNs() - start) / 1e6},
                   {"quiet_ms", settleMs}};
    }

    nlohmann::json out = bench::toJson(snapshot, haveSince ? &since : nullptr);
    if (!settled.is_null()) out["settle"] = settled;
    std::printf("%s\n", out.dump(pretty ? 2 : -1).c_str());
    if (!settled.is_null() && !settled["settled"].get<bool>()) {
        std::fprintf(stderr, "sustain-bench-metrics: instance \"%s\" kept changing for %g s\n", instance.c_str(),
                     timeoutS);
        return 1;
    }
    return 0;
}
