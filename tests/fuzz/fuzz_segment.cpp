// Fuzz target for the reading side of a hostile shared-memory segment: a segment that
// passed the attach checks (magic, version, size, owner, mode) but whose every other byte is
// arbitrary, read by sustain-status (snapshot, health, JSON, text). Nothing the segment holds
// may crash the monitor or make it read outside the segment.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "shm/layout.h"
#include "tools/status/status_format.h"
#include "tools/status/status_snapshot.h"

namespace {
std::unique_ptr<uint8_t[]> buffer(new uint8_t[sustain::kSegmentSize]);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    // Tile the input over the whole segment, then make it pass the attach checks.
    for (size_t i = 0; i < sustain::kSegmentSize; ++i) buffer[i] = data[i % size] ^ static_cast<uint8_t>(i / size);
    auto* segment = reinterpret_cast<sustain::Segment*>(buffer.get());
    segment->header.layoutVersion = sustain::kLayoutVersion;
    segment->header.segmentSize = sustain::kSegmentSize;
    std::string why;
    const sustain::StatusSnapshot snapshot = sustain::takeSnapshot(*segment, 1'000'000'000'000ull);
    const sustain::Health health = sustain::healthOf(snapshot, why);
    const std::string json = sustain::statusJson(snapshot, health, why).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const std::string text = sustain::statusText(snapshot, health, why);
    if (json.empty() || text.empty()) std::abort();
    return 0;
}

#ifndef SUSTAIN_LIBFUZZER
int main(int argc, char** argv) {
    const uint64_t runs = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000;
    std::mt19937_64 random(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1);
    std::vector<uint8_t> input;
    for (uint64_t r = 0; r < runs; ++r) {
        input.resize(1 + random() % 4096);
        for (uint8_t& b : input) b = static_cast<uint8_t>(random());
        // Now and then mostly zeros or mostly 0xff, the shapes of fresh and of torn memory.
        if (r % 4 == 1) std::fill(input.begin(), input.end() - static_cast<long>(input.size() / 8), 0);
        if (r % 4 == 2) std::fill(input.begin(), input.end() - static_cast<long>(input.size() / 8), 0xff);
        LLVMFuzzerTestOneInput(input.data(), input.size());
    }
    std::printf("fuzz_segment: %llu hostile segments read, no crash, no sanitizer report\n",
                static_cast<unsigned long long>(runs));
    return 0;
}
#endif
