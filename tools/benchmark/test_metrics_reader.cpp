// Unit tests of the benchmark's metrics reader: percentiles of unit-width histograms
// (empty, single bin, overflow) and a snapshot's way through JSON and back (--since).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "tools/benchmark/metrics_reader.h"

using namespace sustain;
using namespace sustain::bench;

TEST_CASE("percentiles: an empty histogram gives zeros") {
    const std::vector<uint64_t> bins(10, 0);
    const Percentiles p = percentiles(bins);
    CHECK(p.count == 0);
    CHECK(p.p50 == 0);
    CHECK(p.p99 == 0);
    CHECK(p.max == 0);
}

TEST_CASE("percentiles: nearest rank over bins' lower edges") {
    std::vector<uint64_t> bins(201, 0);
    for (uint64_t value = 1; value <= 100; ++value) bins[value] = 1;  // 1..100, once each
    const Percentiles p = percentiles(bins);
    CHECK(p.count == 100);
    CHECK(p.p50 == 50);
    CHECK(p.p95 == 95);
    CHECK(p.p99 == 99);
    CHECK(p.max == 100);
    CHECK(p.overflow == 0);
    CHECK(p.mean == doctest::Approx(50.5));
}

TEST_CASE("percentiles: one bin holds every percentile") {
    std::vector<uint64_t> bins(8, 0);
    bins[3] = 1000;
    const Percentiles p = percentiles(bins);
    CHECK(p.p50 == 3);
    CHECK(p.p99 == 3);
    CHECK(p.max == 3);
}

TEST_CASE("percentiles: the overflow bin is counted and makes max a lower bound") {
    std::vector<uint64_t> bins(5, 0);
    bins[1] = 98;
    bins[4] = 2;  // overflow
    const Percentiles p = percentiles(bins);
    CHECK(p.overflow == 2);
    CHECK(p.p95 == 1);
    CHECK(p.p99 == 4);
    CHECK(p.max == 4);
}

TEST_CASE("snapshot: survives JSON, and --since gives the difference") {
    auto segment = std::make_unique<Segment>();
    segment->config.sampleRate = 48000;
    segment->osc.received.store(10);
    segment->osc.accepted.store(9);
    segment->workers[0].applied.store(7);
    segment->workers[0].latencyBins[64].store(7);
    segment->params.entries[kParamMasterGain].value.store(0.5);
    const MetricsSnapshot before = readSnapshot(*segment, "t");
    const MetricsSnapshot reread = fromJson(toJson(before));
    CHECK(reread.received == 10);
    CHECK(reread.latencyBins[64] == 7);
    CHECK(reread.params[kParamMasterGain] == 0.5);

    segment->osc.received.store(110);
    segment->workers[0].applied.store(57);
    segment->workers[0].latencyBins[10].store(50);
    const nlohmann::json after = toJson(readSnapshot(*segment, "t"), &reread);
    CHECK(after["delta"]["osc"]["received"] == 100);
    CHECK(after["delta"]["worker"]["applied"] == 50);
    CHECK(after["delta"]["latency"]["count"] == 50);
    CHECK(after["delta"]["latency"]["max_samples"] == 10);
    CHECK(after["latency"]["max_samples"] == 64);
    CHECK(after["latency"]["p50_us"] == doctest::Approx(208.3));  // 50 of 57 in bin 10: 10 samples at 48 kHz
}
