// Fuzz target for mapping files (osc/mapping.cpp): toml++'s parser and every check after it,
// exactly as a reload calls them. No input may crash, and a file that is accepted must only
// ever produce safe parameter changes.
//
// libFuzzer-compatible (LLVMFuzzerTestOneInput). Built with clang's -fsanitize=fuzzer by
// tools/fuzz for long runs; otherwise (g++, CI) with the small driver below, which replays
// the checked-in corpus and then runs seeded mutations of it under ASan + UBSan. The inputs
// are text, so besides byte edits the driver splices lines and inserts TOML fragments.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "osc/mapping.h"
#include "shm/layout.h"

namespace {

constexpr uint32_t kFuzzVoices = 4;
constexpr uint32_t kFuzzRate = 48000;
uint64_t acceptedInputs = 0;  // for the driver's summary: are mutations reaching past the syntax?

// What the OSC thread relies on for every target of an accepted mapping.
void checkTarget(const sustain::MapTarget& target) {
    const bool known = target.param < 1 + 2 * kFuzzVoices;
    const bool ordered = target.paramMin <= target.paramMax && target.inputMin < target.inputMax;
    if (!known || !ordered) std::abort();
    const double positions[] = {-1.0, 0.0, 1e-9, 0.25, 0.5, 1.0, 2.0, target.inputMin, target.inputMax, NAN, INFINITY};
    for (double position : positions) {
        const double value = sustain::curveToValue(target, position);
        if (!std::isfinite(value) || value < target.paramMin || value > target.paramMax) std::abort();
        const double back = sustain::valueToCurve(target, value);
        if (!std::isfinite(back) || back < target.inputMin || back > target.inputMax) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::string error;
    const auto mapping = sustain::Mapping::parse(text, kFuzzVoices, kFuzzRate, error, "fuzz.toml");
    if (!mapping) {
        if (!error.starts_with("fuzz.toml")) std::abort();  // every refusal names its source
        return 0;
    }
    ++acceptedInputs;
    size_t shown = 0;
    for (const sustain::MapEntry& entry : mapping->entries()) {
        const bool panic = entry.press == sustain::PressAction::Panic;
        if (mapping->find(entry.address) != &entry || entry.targets.empty() != panic || !entry.address.starts_with('/'))
            std::abort();
        if (entry.press == sustain::PressAction::SetValue &&
            !(entry.pressValue >= entry.targets[0].paramMin && entry.pressValue <= entry.targets[0].paramMax))
            std::abort();
        (void)mapping->ignores(entry.address);
        for (const sustain::MapTarget& target : entry.targets) checkTarget(target);
    }
    // Every label formats to a terminated text of bounded length, whatever the value.
    for (const sustain::LabelEntry& label : mapping->labels()) {
        for (const double value : {0.0, -1.0, 1e300, -1e300, 440.0, 0.5, double(NAN), double(INFINITY)}) {
            char text[sustain::kMaxLabelFormatBytes + 64];
            sustain::formatLabel(label, value, text, sizeof text);
            if (std::char_traits<char>::length(text) >= sizeof text) std::abort();
        }
    }
    for (uint32_t param = 0; param <= sustain::kParamCount; ++param) {
        for (const sustain::MapRef& ref : mapping->showing(param)) {
            if (ref.entry >= mapping->entries().size()) std::abort();
            const sustain::MapEntry& entry = mapping->entries()[ref.entry];
            if (ref.argument >= entry.targets.size() || entry.targets[ref.argument].param != param) std::abort();
            ++shown;
        }
    }
    size_t targets = 0;
    for (const sustain::MapEntry& entry : mapping->entries())
        if (entry.press == sustain::PressAction::None) targets += entry.targets.size();  // buttons show nothing
    if (shown != targets) std::abort();
    return 0;
}

#ifndef SUSTAIN_LIBFUZZER
namespace {

std::vector<std::string> readCorpus(const std::string& directory) {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        std::ifstream file(entry.path(), std::ios::binary);
        files.emplace_back(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    }
    return files;
}

// Pieces of the format, so that mutations stay near the grammar and reach the checks.
constexpr std::string_view kFragments[] = {
    "[[map]]\n", "[map]\n", "address = \"/1/fader1\"\n", "param = \"voice.3.freq\"\n", "params = [\"voice.0.freq\", \"voice.0.gain\"]\n",
    "curve = \"exp\"\n", "curve = \"db\"\n", "curves = [\"db\", \"linear\"]\n", "range = [-60.0, 0.0]\n",
    "ranges = [[0, 1], [1, 0]]\n", "input = [0, 127]\n", "feedback_port = 9000\n", "= ", "\"", "[", "]", ",", ".",
    "\n", "#", "'''", "\"\"\"", "inf", "nan", "-0.0", "1e308", "-1", "99999999999999999999", "voice.", "master.gain",
    "/engine/gain", "[[label]]\n", "format = \"%.1f Hz\"\n", "status = \"spare\"\n", "unit = \"db\"\n",
    "count = 4\n", "first_index = 0\n", "first_voice = 1\n", "param = \"voice.*.gain\"\n", "press = 440\n",
    "action = \"panic\"\n", "ignore = [\"/*/z\", \"/[0-9]\", \"/{a,b}?\"]\n", "%", "%%", "*", "\\u0000", "\xc3\xa9", "{ a = 1 }", "1979-05-27T07:32:00Z", "true",
};

std::string mutate(const std::vector<std::string>& corpus, std::mt19937_64& random) {
    std::string out = corpus[random() % corpus.size()];
    const int edits = 1 + static_cast<int>(random() % 6);
    for (int e = 0; e < edits; ++e) {
        const size_t at = out.empty() ? 0 : random() % (out.size() + 1);
        switch (random() % 6) {
            case 0:  // a TOML fragment
                out.insert(at, kFragments[random() % std::size(kFragments)]);
                break;
            case 1:  // a random byte, or a bit flipped
                if (at < out.size()) out[at] = static_cast<char>(random() % 2 ? random() : out[at] ^ (1 << (random() % 8)));
                break;
            case 2:  // delete a run
                if (at < out.size()) out.erase(at, 1 + random() % 16);
                break;
            case 3: {  // a line of another corpus file
                const std::string& other = corpus[random() % corpus.size()];
                if (other.empty()) break;
                const size_t start = other.rfind('\n', random() % other.size());
                const size_t from = start == std::string::npos ? 0 : start + 1;
                out.insert(at, other.substr(from, other.find('\n', from) - from + 1));
                break;
            }
            case 4:  // repeat a run (many entries, long lists)
                if (at < out.size()) {
                    const std::string run = out.substr(at, 1 + random() % 64);
                    for (int r = static_cast<int>(random() % 8); r >= 0; --r) out.insert(at, run);
                }
                break;
            case 5:  // truncate
                out.resize(at);
                break;
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
    const std::vector<std::string> corpus = readCorpus(argv[1]);
    if (corpus.empty()) {
        std::fprintf(stderr, "%s: no corpus files in %s\n", argv[0], argv[1]);
        return 2;
    }
    const uint64_t mutations = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100000;
    std::mt19937_64 random(argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1);
    for (const std::string& input : corpus)
        LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    acceptedInputs = 0;
    for (uint64_t i = 0; i < mutations; ++i) {
        const std::string input = mutate(corpus, random);
        LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    }
    std::printf("fuzz_mapping: %zu corpus inputs and %llu mutations (%llu accepted), no crash, no sanitizer report\n",
                corpus.size(), static_cast<unsigned long long>(mutations), static_cast<unsigned long long>(acceptedInputs));
    return 0;
}
#endif
