// Fuzz target for everything that parses OSC from the network: the bundle walker, liblo's
// message parser, the address map and the validator, exactly as the OSC thread calls them.
//
// libFuzzer-compatible (LLVMFuzzerTestOneInput). Built with clang's -fsanitize=fuzzer by
// tools/fuzz for long runs; otherwise (g++, CI) with the small driver below, which replays
// the checked-in corpus and then runs seeded random mutations of it, under ASan + UBSan.
#include <lo/lo.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "osc/message_validator.h"
#include "osc/osc_packet.h"
#include "shm/layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> copy(data, data + size);  // liblo wants a mutable pointer
    sustain::forEachMessage(copy.data(), copy.size(), [](const uint8_t* message, size_t length, uint64_t) {
        void* bytes = const_cast<uint8_t*>(message);
        int result = 0;
        lo_message parsed = lo_message_deserialise(bytes, length, &result);
        if (parsed == nullptr) return;
        const char* path = lo_get_path(bytes, static_cast<ssize_t>(length));
        const sustain::ValidatedChange change =
            sustain::validateMessage(path != nullptr ? path : "", parsed, 16, 48000);
        // Whatever was accepted must be safe to hand to the audio side.
        if (change.error == sustain::RejectReason::None &&
            (change.param >= sustain::kParamCount || !(change.value == change.value))) std::abort();
        lo_message_free(parsed);
    });
    return 0;
}

#ifndef SUSTAIN_LIBFUZZER
namespace {

std::vector<std::vector<uint8_t>> loadCorpus(const std::string& directory) {
    std::vector<std::vector<uint8_t>> corpus;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        std::ifstream file(entry.path(), std::ios::binary);
        corpus.emplace_back(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    }
    return corpus;
}

std::vector<uint8_t> mutate(const std::vector<uint8_t>& seed, std::mt19937_64& random) {
    std::vector<uint8_t> out = seed;
    const int edits = 1 + static_cast<int>(random() % 8);
    for (int e = 0; e < edits; ++e) {
        const size_t at = out.empty() ? 0 : random() % out.size();
        switch (random() % 6) {
            case 0: if (!out.empty()) out[at] ^= static_cast<uint8_t>(1u << (random() % 8)); break;   // flip a bit
            case 1: if (!out.empty()) out[at] = static_cast<uint8_t>(random()); break;                // a random byte
            case 2: out.insert(out.begin() + static_cast<long>(at), static_cast<uint8_t>(random())); break;
            case 3: if (!out.empty()) out.erase(out.begin() + static_cast<long>(at)); break;
            case 4: out.resize(random() % (out.size() + 8)); break;                                   // truncate or grow
            case 5: {  // an interesting 32-bit value (sizes, counts) at an aligned place
                static const uint32_t values[] = {0, 1, 4, 0x7fffffff, 0x80000000, 0xffffffff, 65536, 12};
                if (out.size() >= 4) {
                    const uint32_t v = values[random() % 8];
                    const size_t aligned = (at / 4) * 4;
                    if (aligned + 4 <= out.size()) std::memcpy(out.data() + aligned, &v, 4);
                }
                break;
            }
        }
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS] [SEED]\n", argv[0]);
        return 2;
    }
    const auto corpus = loadCorpus(argv[1]);
    const uint64_t mutations = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100000;
    std::mt19937_64 random(argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1);
    for (const auto& input : corpus) LLVMFuzzerTestOneInput(input.data(), input.size());
    for (uint64_t i = 0; i < mutations; ++i) {
        const auto input = mutate(corpus[random() % corpus.size()], random);
        LLVMFuzzerTestOneInput(input.data(), input.size());
    }
    std::printf("fuzz_osc: %zu corpus inputs and %llu mutations, no crash, no sanitizer report\n", corpus.size(),
                static_cast<unsigned long long>(mutations));
    return 0;
}
#endif
