// Control-surface mappings: the curves and their inverses, the built-in aliases, and a table
// of bad files, each refused with its line and reason.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "osc/mapping.h"
#include "osc/param_address.h"
#include "shm/layout.h"

using namespace sustain;

namespace {

constexpr uint32_t kVoices = 4;
constexpr uint32_t kRate = 48000;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

MapTarget target(uint32_t param, Curve curve, double min, double max) {
    const ParamRange valid = paramRange(param, kRate);
    MapTarget t;
    t.param = param;
    t.curve = curve;
    t.min = min;
    t.max = max;
    t.paramMin = valid.min;
    t.paramMax = valid.max;
    return t;
}

std::optional<Mapping> parse(const std::string& text, std::string& error) {
    return Mapping::parse(text, kVoices, kRate, error, "test.toml");
}

}  // namespace

TEST_CASE("curves: ends, middle and clamping of each curve") {
    const MapTarget gain = target(kParamMasterGain, Curve::Linear, 0.0, 1.0);
    const MapTarget narrow = target(voiceGainParam(1), Curve::Linear, 0.2, 0.8);
    const MapTarget reversed = target(voiceGainParam(1), Curve::Linear, 1.0, 0.0);
    const MapTarget freq = target(voiceFreqParam(0), Curve::Exponential, 110.0, 1760.0);
    const MapTarget fader = target(kParamMasterGain, Curve::Decibel, -60.0, 0.0);
    struct Case {
        const char* name;
        const MapTarget& target;
        double position;
        double value;
    };
    const Case cases[] = {
        {"linear bottom", gain, 0.0, 0.0},
        {"linear middle", gain, 0.5, 0.5},
        {"linear top", gain, 1.0, 1.0},
        {"linear below the input range", gain, -3.0, 0.0},
        {"linear above the input range", gain, 7.0, 1.0},
        {"linear NaN is the bottom", gain, kNaN, 0.0},
        {"narrow bottom", narrow, 0.0, 0.2},
        {"narrow middle", narrow, 0.5, 0.5},
        {"narrow top", narrow, 1.0, 0.8},
        {"reversed bottom", reversed, 0.0, 1.0},
        {"reversed quarter", reversed, 0.25, 0.75},
        {"exp bottom", freq, 0.0, 110.0},
        {"exp quarter: one octave up", freq, 0.25, 220.0},
        {"exp middle: two octaves up", freq, 0.5, 440.0},
        {"exp top", freq, 1.0, 1760.0},
        {"exp above the input range", freq, 1.5, 1760.0},
        {"db bottom is silence", fader, 0.0, 0.0},
        {"db just above the bottom is -60 dB", fader, 1e-12, 0.001},
        {"db middle is -30 dB", fader, 0.5, std::pow(10.0, -1.5)},
        {"db two thirds is -20 dB", fader, 2.0 / 3.0, 0.1},
        {"db top is 0 dB", fader, 1.0, 1.0},
        {"db below the input range is silence", fader, -0.1, 0.0},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        CHECK(curveToValue(c.target, c.position) == doctest::Approx(c.value).epsilon(1e-9));
    }
    // The ends are exact, not approximately right: the top of a gain fader is gain 1.
    CHECK(curveToValue(fader, 0.0) == 0.0);
    CHECK(curveToValue(fader, 1.0) == 1.0);
    CHECK(curveToValue(freq, 1.0) == 1760.0);
    CHECK(curveToValue(narrow, 1.0) == 0.8);
}

TEST_CASE("curves: values are clamped to the parameter's valid range") {
    // Targets built by hand past the valid range (parse() refuses such files).
    CHECK(curveToValue(target(kParamMasterGain, Curve::Linear, -1.0, 2.0), 0.0) == 0.0);
    CHECK(curveToValue(target(kParamMasterGain, Curve::Linear, -1.0, 2.0), 1.0) == 1.0);
    CHECK(curveToValue(target(kParamMasterGain, Curve::Decibel, -60.0, 12.0), 1.0) == 1.0);
    const double nyquistish = paramRange(voiceFreqParam(0), kRate).max;
    CHECK(curveToValue(target(voiceFreqParam(0), Curve::Exponential, 20.0, 40000.0), 1.0) == nyquistish);
    CHECK(curveToValue(target(voiceFreqParam(0), Curve::Linear, 0.0, 100.0), 0.0) == kMinFreqHz);
}

TEST_CASE("curves: a custom input range (a 0..127 controller)") {
    MapTarget t = target(voiceGainParam(0), Curve::Linear, 0.0, 1.0);
    t.inputMin = 0.0;
    t.inputMax = 127.0;
    CHECK(curveToValue(t, 0.0) == 0.0);
    CHECK(curveToValue(t, 63.5) == doctest::Approx(0.5));
    CHECK(curveToValue(t, 127.0) == 1.0);
    CHECK(curveToValue(t, 200.0) == 1.0);
    CHECK(valueToCurve(t, 0.5) == doctest::Approx(63.5));
    CHECK(valueToCurve(t, 1.0) == 127.0);
}

TEST_CASE("curves: valueToCurve is the inverse of curveToValue") {
    const MapTarget targets[] = {
        target(kParamMasterGain, Curve::Linear, 0.0, 1.0),
        target(voiceGainParam(2), Curve::Linear, 0.5, 0.1),
        target(voiceFreqParam(0), Curve::Exponential, 110.0, 1760.0),
        target(voiceFreqParam(3), Curve::Exponential, 20.0, 20000.0),
        target(voiceFreqParam(3), Curve::Linear, 100.0, 1000.0),
        target(kParamMasterGain, Curve::Decibel, -60.0, 0.0),
        target(voiceGainParam(1), Curve::Decibel, -90.0, -6.0),
    };
    for (const MapTarget& t : targets) {
        CAPTURE(curveName(t.curve));
        CAPTURE(t.min);
        CAPTURE(t.max);
        for (int step = 0; step <= 20; ++step) {
            const double position = step / 20.0;
            CAPTURE(position);
            const double value = curveToValue(t, position);
            CHECK(valueToCurve(t, value) == doctest::Approx(position).epsilon(1e-9));
            CHECK(curveToValue(t, valueToCurve(t, value)) == doctest::Approx(value).epsilon(1e-9));
        }
    }
}

TEST_CASE("curves: values a curve cannot reach show at the nearest end") {
    const MapTarget freq = target(voiceFreqParam(0), Curve::Exponential, 110.0, 1760.0);
    CHECK(valueToCurve(freq, 50.0) == 0.0);
    CHECK(valueToCurve(freq, 5000.0) == 1.0);
    CHECK(valueToCurve(freq, 0.0) == 0.0);
    CHECK(valueToCurve(freq, kNaN) == 0.0);
    const MapTarget fader = target(kParamMasterGain, Curve::Decibel, -60.0, -6.0);
    CHECK(valueToCurve(fader, 0.0) == 0.0);
    CHECK(valueToCurve(fader, 0.0005) == 0.0);  // below -60 dB: the bottom, where the fader is silence
    CHECK(valueToCurve(fader, 1.0) == 1.0);     // above -6 dB: the top
    const MapTarget reversed = target(voiceGainParam(0), Curve::Linear, 1.0, 0.0);
    CHECK(valueToCurve(reversed, 1.0) == 0.0);
    CHECK(valueToCurve(reversed, 0.0) == 1.0);
    CHECK(valueToCurve(reversed, 0.25) == doctest::Approx(0.75));
    CHECK(valueToCurve(reversed, kNaN) == 0.0);  // NaN shows at the bottom, never as NaN
    CHECK(valueToCurve(fader, kNaN) == 0.0);
}

TEST_CASE("aliases: the built-in normalised addresses") {
    const double top = std::min(20000.0, 0.45 * kRate);
    struct Case {
        const char* address;
        bool found;
        uint32_t param;
        Curve curve;
        double min, max;
    };
    const Case cases[] = {
        {"/engine/gain/norm", true, kParamMasterGain, Curve::Linear, 0.0, 1.0},
        {"/engine/freq/norm", true, voiceFreqParam(0), Curve::Exponential, 20.0, top},
        {"/engine/voice/0/freq/norm", true, voiceFreqParam(0), Curve::Exponential, 20.0, top},
        {"/engine/voice/3/freq/norm", true, voiceFreqParam(3), Curve::Exponential, 20.0, top},
        {"/engine/voice/2/gain/norm", true, voiceGainParam(2), Curve::Linear, 0.0, 1.0},
        {"/engine/voice/4/gain/norm", false, 0, Curve::Linear, 0, 0},  // only 4 voices
        {"/engine/voice/x/gain/norm", false, 0, Curve::Linear, 0, 0},
        {"/engine/voice/1/gain", false, 0, Curve::Linear, 0, 0},  // the plain address is not an alias
        {"/engine/gain", false, 0, Curve::Linear, 0, 0},
        {"/engine/gain/norm/", false, 0, Curve::Linear, 0, 0},
        {"/engine/ping/norm", false, 0, Curve::Linear, 0, 0},
        {"/norm", false, 0, Curve::Linear, 0, 0},
        {"", false, 0, Curve::Linear, 0, 0},
    };
    for (const Case& c : cases) {
        CAPTURE(c.address);
        const std::optional<MapTarget> alias = normalisedAlias(c.address, kVoices, kRate);
        REQUIRE(alias.has_value() == c.found);
        if (!alias) continue;
        CHECK(alias->param == c.param);
        CHECK(alias->curve == c.curve);
        CHECK(alias->min == doctest::Approx(c.min));
        CHECK(alias->max == doctest::Approx(c.max));
        CHECK(alias->inputMin == 0.0);
        CHECK(alias->inputMax == 1.0);
    }
    // At 48 kHz the frequency alias tops out below Nyquist, not at 20 kHz.
    const MapTarget freq = *normalisedAlias("/engine/freq/norm", kVoices, kRate);
    CHECK(curveToValue(freq, 1.0) == 20000.0);
    const MapTarget low = *normalisedAlias("/engine/freq/norm", kVoices, 22050);
    CHECK(curveToValue(low, 1.0) == doctest::Approx(0.45 * 22050));
    CHECK(curveToValue(low, 0.0) == doctest::Approx(20.0));
}

TEST_CASE("parse: a two-argument entry, defaults and the reverse lookup") {
    std::string error;
    const auto mapping = parse(R"(feedback_port = 9000
[[map]]
address = "/b/xy"
params = ["voice.0.freq", "voice.0.gain"]
curves = ["exp", "linear"]
ranges = [[110.0, 1760], [0, 1]]

[[map]]
address = "/a/fader"
param = "voice.0.gain"
curve = "db"
feedback_port = 0

[[map]]
address = "/c/knob"
param = "voice.1.freq"
input = [0, 127]
)",
                               error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    REQUIRE(mapping->entries().size() == 3);
    CHECK(mapping->entries()[0].address == "/a/fader");  // sorted by address
    CHECK(mapping->find("/nope") == nullptr);
    CHECK(mapping->find("/b/x") == nullptr);
    CHECK(mapping->find("/b/xyz") == nullptr);

    const MapEntry* xy = mapping->find("/b/xy");
    REQUIRE(xy != nullptr);
    CHECK(xy->line == 2);
    CHECK(xy->feedbackPort == 9000);
    REQUIRE(xy->targets.size() == 2);
    CHECK(xy->targets[0].param == voiceFreqParam(0));
    CHECK(xy->targets[0].curve == Curve::Exponential);
    CHECK(xy->targets[0].max == 1760.0);
    CHECK(xy->targets[1].param == voiceGainParam(0));

    const MapEntry* fader = mapping->find("/a/fader");
    REQUIRE(fader != nullptr);
    CHECK(fader->feedbackPort == 0);
    CHECK(fader->targets[0].min == -60.0);  // the db default
    CHECK(fader->targets[0].max == 0.0);

    const MapEntry* knob = mapping->find("/c/knob");
    REQUIRE(knob != nullptr);
    CHECK(knob->targets[0].min == kMinFreqHz);  // the linear default: the valid range
    CHECK(knob->targets[0].max == paramRange(voiceFreqParam(1), kRate).max);
    CHECK(knob->targets[0].inputMax == 127.0);

    const auto gainShown = mapping->showing(voiceGainParam(0));
    REQUIRE(gainShown.size() == 2);
    CHECK(mapping->entries()[gainShown[0].entry].address == "/a/fader");
    CHECK(gainShown[0].argument == 0);
    CHECK(mapping->entries()[gainShown[1].entry].address == "/b/xy");
    CHECK(gainShown[1].argument == 1);
    CHECK(mapping->showing(voiceFreqParam(1)).size() == 1);
    CHECK(mapping->showing(kParamMasterGain).empty());
    CHECK(mapping->showing(kParamCount).empty());
    CHECK(mapping->showing(0xffffffff).empty());
}

TEST_CASE("parse: comments may hold any UTF-8 text") {
    std::string error;
    const auto mapping = parse("# Fr\xc3\xa9quence \xc3\x97 2 \"\n[[map]] # \xc3\xa9 '\naddress = \"/a\" # \xc3\xbc \"\"\"\n"
                               "param = 'master.gain' # \xe2\x80\x94 '''\n",
                               error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    CHECK(mapping->find("/a") != nullptr);
}

TEST_CASE("parse: an empty file is an empty mapping") {
    std::string error;
    const auto mapping = parse("# nothing mapped yet\n", error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    CHECK(mapping->entries().empty());
    CHECK(mapping->find("/1/fader1") == nullptr);
}

TEST_CASE("parse: each bad file is refused with its line and reason") {
    struct Case {
        const char* name;
        const char* text;
        const char* expected;  // the whole message must start with this
    };
    const Case cases[] = {
        {"TOML syntax", "[[map]]\naddress = \"/a\"\nparam = \n", "test.toml:3: TOML syntax"},
        // toml++ 3.3.0 asserts on these in builds with its assertions on; the release library
        // must refuse them as syntax errors.
        {"array-of-tables header of a number", "[[[1]]]\n", "test.toml:1: TOML syntax"},
        {"array-of-tables header of a table", "[[[a]]]\n", "test.toml:1: TOML syntax"},
        {"array-of-tables header of nothing", "[[=\n", "test.toml:1: TOML syntax"},
        // Outside comments, non-ASCII text is refused before toml++ sees it (see mapping.cpp).
        {"non-ASCII key", "feedback_port = 9000\n\xc3\xa9 = 1\n", "test.toml:2: a character outside ASCII"},
        {"non-ASCII address", "[[map]]\naddress = \"/\xc3\xa9\"\n", "test.toml:2: a character outside ASCII"},
        {"non-ASCII after an escaped quote", "[[map]]\naddress = \"/a\\\"#\xc3\xa9\"\n",
         "test.toml:2: a character outside ASCII"},
        {"non-ASCII after a line-ending backslash", "s = \"\"\"\\\n\xc2\xa7\"\"\"\n",
         "test.toml:2: a character outside ASCII"},
        {"non-ASCII in a multi-line literal", "s = '''\n# \xc2\xa7'''\n", "test.toml:2: a character outside ASCII"},
        {"unterminated string", "[[map]]\naddress = \"/a\nparam = \"master.gain\"\n", "test.toml:2: TOML syntax"},
        {"unknown parameter", "[[map]]\naddress = \"/a\"\n\nparam = \"voice.0.pitch\"\n",
         "test.toml:4: param: unknown parameter \"voice.0.pitch\""},
        {"unknown parameter: master", "[[map]]\naddress = \"/a\"\nparam = \"master.freq\"\n",
         "test.toml:3: param: unknown parameter"},
        {"voice not a number", "[[map]]\naddress = \"/a\"\nparam = \"voice.one.gain\"\n",
         "test.toml:3: param: unknown parameter"},
        {"voice beyond the engine's", "[[map]]\naddress = \"/a\"\nparam = \"voice.4.gain\"\n",
         "test.toml:3: param: parameter \"voice.4.gain\": voice 4, but the engine has 4 voices"},
        {"voice beyond, in a list", "[[map]]\naddress = \"/a\"\nparams = [\n  \"voice.0.gain\",\n  \"voice.9.freq\",\n]\n",
         "test.toml:5: params[1]: parameter \"voice.9.freq\": voice 9"},
        {"gain range above 1", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\nrange = [0.0, 1.5]\n",
         "test.toml:4: range [0, 1.5]: outside the valid range of master.gain, 0 .. 1"},
        {"frequency above 20 kHz", "[[map]]\naddress = \"/a\"\nparam = \"voice.0.freq\"\nrange = [20, 30000]\n",
         "test.toml:4: range [20, 30000]: outside the valid range of voice.0.freq, 1 .. 20000 Hz"},
        {"negative frequency", "[[map]]\naddress = \"/a\"\nparam = \"voice.0.freq\"\nrange = [-5, 300]\n",
         "test.toml:4: range [-5, 300]: outside the valid range"},
        {"empty range", "[[map]]\naddress = \"/a\"\nparam = \"voice.0.gain\"\nrange = [0.5, 0.5]\n",
         "test.toml:4: range [0.5, 0.5]: empty"},
        {"exp with min 0", "[[map]]\naddress = \"/a\"\nparam = \"voice.0.freq\"\ncurve = \"exp\"\nrange = [0, 100]\n",
         "test.toml:5: range [0, 100]: curve \"exp\" needs both ends above 0"},
        {"exp on a gain without range", "[[map]]\naddress = \"/a\"\nparam = \"voice.0.gain\"\ncurve = \"exp\"\n",
         "test.toml:4: curve: curve \"exp\" needs a range above 0"},
        {"db above 0 dB", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\ncurve = \"db\"\nrange = [-60, 6]\n",
         "test.toml:5: range [-60, 6] dB: above 0 dB"},
        {"db upside down", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\ncurve = \"db\"\nrange = [0, -60]\n",
         "test.toml:5: range [0, -60] dB: expected bottom < top"},
        {"db on a frequency", "[[map]]\naddress = \"/a\"\nparam = \"voice.0.freq\"\ncurve = \"db\"\n",
         "test.toml:4: curve: curve \"db\" is for gains"},
        {"unknown curve", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\ncurve = \"log\"\n",
         "test.toml:4: curve: unknown curve \"log\": expected linear, exp or db"},
        {"unknown curve in a list",
         "[[map]]\naddress = \"/a\"\nparams = [\"voice.0.freq\", \"voice.0.gain\"]\ncurves = [\"exp\", \"cubic\"]\n",
         "test.toml:4: curves[1]: unknown curve \"cubic\""},
        {"duplicate address",
         "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\n\n[[map]]\naddress = \"/b\"\nparam = \"voice.0.gain\"\n\n"
         "[[map]]\naddress = \"/a\"\nparam = \"voice.1.gain\"\n",
         "test.toml:9: address \"/a\" is mapped twice (first at line 1)"},
        {"address without slash", "[[map]]\naddress = \"1/fader1\"\nparam = \"master.gain\"\n",
         "test.toml:2: address \"1/fader1\": expected an OSC path starting with '/'"},
        {"address with a pattern", "[[map]]\naddress = \"/1/fader*\"\nparam = \"master.gain\"\n",
         "test.toml:2: address \"/1/fader*\": only printable ASCII"},
        {"address with a space", "[[map]]\naddress = \"/1/fader 1\"\nparam = \"master.gain\"\n",
         "test.toml:2: address \"/1/fader 1\": only printable ASCII"},
        {"engine address", "[[map]]\naddress = \"/engine/gain\"\nparam = \"master.gain\"\n",
         "test.toml:2: address \"/engine/gain\": /engine/ addresses are the engine's own"},
        {"missing address", "feedback_port = 9000\n[[map]]\nparam = \"master.gain\"\n",
         "test.toml:2: [[map]] entry without an address"},
        {"no parameter", "[[map]]\naddress = \"/a\"\n", "test.toml:1: [[map]] /a: expected either param"},
        {"param and params", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\nparams = [\"master.gain\"]\n",
         "test.toml:1: [[map]] /a: expected either param"},
        {"plural key with param", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\nranges = [[0, 1]]\n",
         "test.toml:4: ranges goes with params; here use range"},
        {"singular key with params", "[[map]]\naddress = \"/a\"\nparams = [\"master.gain\"]\ncurve = \"db\"\n",
         "test.toml:4: curve goes with param; here use curves"},
        {"list lengths differ",
         "[[map]]\naddress = \"/a\"\nparams = [\"voice.0.freq\", \"voice.0.gain\"]\nranges = [[100, 200]]\n",
         "test.toml:4: ranges: 1 elements for 2 params"},
        {"empty params", "[[map]]\naddress = \"/a\"\nparams = []\n", "test.toml:3: params: expected 1 .. 16"},
        {"unknown key in an entry", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\ncurv = \"db\"\n",
         "test.toml:4: unknown key \"curv\" in [[map]]"},
        {"unknown top-level key", "feedback_port = 9000\nfeedback = 1\n", "test.toml:2: unknown key \"feedback\""},
        {"address not a string", "[[map]]\naddress = 5\nparam = \"master.gain\"\n",
         "test.toml:2: address: expected a string, got an integer"},
        {"param not a string", "[[map]]\naddress = \"/a\"\nparam = [\"master.gain\"]\n",
         "test.toml:3: param: expected a string, got an array"},
        {"range not a pair", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\nrange = [0, 0.5, 1]\n",
         "test.toml:4: range: expected [low, high], got 3 elements"},
        {"range of strings", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\nrange = [\"0\", \"1\"]\n",
         "test.toml:4: range: expected a number, got a string"},
        {"range not finite", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\nrange = [0, inf]\n",
         "test.toml:4: range: expected a finite number, got inf"},
        {"input upside down", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\ninput = [1, 0]\n",
         "test.toml:4: input: [1, 0]: expected bottom < top"},
        {"port too large", "feedback_port = 70000\n", "test.toml:1: feedback_port: expected 0..65535, got 70000"},
        {"port as a string", "[[map]]\naddress = \"/a\"\nparam = \"master.gain\"\nfeedback_port = \"9000\"\n",
         "test.toml:4: feedback_port: expected an integer 0..65535, got a string"},
        {"map as a table", "[map]\naddress = \"/a\"\n", "test.toml:1: map: expected [[map]] entries"},
        {"map of numbers", "map = [1, 2]\n", "test.toml:1: map: expected [[map]] entries"},
        // Multi-controls: '*' and count go together; every element's voice must exist.
        {"star without count", "[[map]]\naddress = \"/m\"\nparam = \"voice.*.gain\"\n",
         "test.toml:3: param: '*' stands for the voice of each element of a multi-control: give count too"},
        {"count without star", "[[map]]\naddress = \"/m\"\nparam = \"voice.0.gain\"\ncount = 2\n",
         "test.toml:3: param: with count, name the voice as '*'"},
        {"count too large", "[[map]]\naddress = \"/m\"\nparam = \"voice.*.gain\"\ncount = 200\n",
         "test.toml:4: count: expected an integer 1..128, got 200"},
        {"multi beyond the voices", "[[map]]\naddress = \"/m\"\nparam = \"voice.*.gain\"\ncount = 3\nfirst_voice = 2\n",
         "test.toml:3: param: parameter \"voice.4.gain\": voice 4, but the engine has 4 voices"},
        {"first_index without count", "[[map]]\naddress = \"/m\"\nparam = \"voice.0.gain\"\nfirst_index = 0\n",
         "test.toml:4: first_index does not go with a single control"},
        {"multi element mapped twice", "[[map]]\naddress = \"/m\"\nparam = \"voice.*.gain\"\ncount = 2\n"
                                       "[[map]]\naddress = \"/m/2\"\nparam = \"master.gain\"\n",
         "test.toml:5: address \"/m/2\" is mapped twice (first at line 1)"},
        // Press-only buttons.
        {"press with a curve", "[[map]]\naddress = \"/p\"\nparam = \"voice.0.freq\"\npress = 440\ncurve = \"exp\"\n",
         "test.toml:5: curve does not go with press"},
        {"press outside the range", "[[map]]\naddress = \"/p\"\nparam = \"voice.0.gain\"\npress = 2\n",
         "test.toml:4: press 2: outside the valid range 0 .. 1"},
        {"press with params", "[[map]]\naddress = \"/p\"\nparams = [\"voice.0.gain\"]\npress = 1\n",
         "test.toml:4: press goes with param"},
        {"unknown action", "[[map]]\naddress = \"/p\"\naction = \"reboot\"\n",
         "test.toml:3: action: unknown action \"reboot\": expected panic"},
        {"action with a param", "[[map]]\naddress = \"/p\"\naction = \"panic\"\nparam = \"master.gain\"\n",
         "test.toml:4: param does not go with action"},
        // Labels.
        {"label without source", "[[label]]\naddress = \"/l\"\n", "test.toml:1: [[label]] /l: expected either param or status"},
        {"label two conversions", "[[label]]\naddress = \"/l\"\nparam = \"master.gain\"\nformat = \"%f %f\"\n",
         "test.toml:4: format \"%f %f\": one conversion only"},
        {"label no conversion", "[[label]]\naddress = \"/l\"\nparam = \"master.gain\"\nformat = \"gain\"\n",
         "test.toml:4: format \"gain\": no conversion"},
        {"label printf's %n", "[[label]]\naddress = \"/l\"\nparam = \"master.gain\"\nformat = \"%n\"\n",
         "test.toml:4: format \"%n\": expected a conversion"},
        {"label wide precision", "[[label]]\naddress = \"/l\"\nparam = \"master.gain\"\nformat = \"%.12f\"\n",
         "test.toml:4: format \"%.12f\": expected a conversion"},
        {"label %s on a number", "[[label]]\naddress = \"/l\"\nparam = \"master.gain\"\nformat = \"%s\"\n",
         "test.toml:4: format \"%s\": expected a conversion"},
        {"label db on a frequency", "[[label]]\naddress = \"/l\"\nparam = \"voice.0.freq\"\nunit = \"db\"\n",
         "test.toml:4: unit: expected \"db\", for a gain"},
        {"label unknown status", "[[label]]\naddress = \"/l\"\nstatus = \"mood\"\n",
         "test.toml:3: status: unknown \"mood\""},
        {"label at a control's address", "[[map]]\naddress = \"/l\"\nparam = \"master.gain\"\n"
                                         "[[label]]\naddress = \"/l\"\nparam = \"master.gain\"\n",
         "test.toml:4: address \"/l\" is mapped twice (first at line 1)"},
        // Ignore lists.
        {"ignore the engine", "ignore = [\"/engine/*\"]\n", "test.toml:1: ignore[0] \"/engine/*\": the engine's own"},
        {"ignore many stars", "ignore = [\"/*/*/*/*/*\"]\n", "test.toml:1: ignore[0] \"/*/*/*/*/*\": at most 4 '*'"},
        {"ignore not a path", "ignore = [\"z\"]\n", "test.toml:1: ignore[0] \"z\": expected an OSC address pattern"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        std::string error;
        const auto mapping = parse(c.text, error);
        CHECK_FALSE(mapping.has_value());
        CAPTURE(error);
        CHECK(error.starts_with(c.expected));
    }
}

TEST_CASE("parse: ranges at the edges of the valid range are accepted") {
    const std::string top = std::to_string(paramRange(voiceFreqParam(0), kRate).max);
    std::string error;
    const auto mapping = parse("[[map]]\naddress = \"/f\"\nparam = \"voice.3.freq\"\ncurve = \"exp\"\nrange = [1, " + top +
                                   "]\n[[map]]\naddress = \"/g\"\nparam = \"voice.3.gain\"\nrange = [1, 0]\n",
                               error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    // At a lower rate the same frequency range is beyond Nyquist.
    const std::string text = "[[map]]\naddress = \"/f\"\nparam = \"voice.0.freq\"\nrange = [20, 15000]\n";
    CHECK(Mapping::parse(text, kVoices, 48000, error).has_value());
    CHECK_FALSE(Mapping::parse(text, kVoices, 22050, error).has_value());
    CHECK(error == "mapping:4: range [20, 15000]: outside the valid range of voice.0.freq, 1 .. 9922.5 Hz at 22050 Hz");
}

TEST_CASE("parse: more than kMaxMapEntries entries are refused at the first one too many") {
    std::string text;
    for (uint32_t i = 0; i <= kMaxMapEntries; ++i)
        text += "[[map]]\naddress = \"/f/" + std::to_string(i) + "\"\nparam = \"master.gain\"\n";
    std::string error;
    CHECK_FALSE(parse(text, error).has_value());
    CHECK(error.starts_with("test.toml:" + std::to_string(3 * kMaxMapEntries + 1) + ": more than 256 [[map]] entries"));
    // One fewer is fine.
    text.resize(text.size() - text.substr(text.rfind("[[map]]")).size());
    CHECK(parse(text, error).has_value());
}

TEST_CASE("parse: oversized and garbage input is refused") {
    std::string error;
    std::string big(kMaxMappingFileBytes + 1, '#');
    big.back() = '\n';
    CHECK_FALSE(parse(big, error).has_value());
    CHECK(error == "test.toml: 1048577 bytes, more than the 1048576 a mapping file may have");

    const std::string controls("\x00\x01\x7f[[[map\x02", 10);
    CHECK_FALSE(parse(controls, error).has_value());
    CHECK(error.starts_with("test.toml:1: TOML syntax"));
    const std::string binary("# ok\n\xff\xfe\x00[[[map", 12);
    CHECK_FALSE(parse(binary, error).has_value());
    CHECK(error.starts_with("test.toml:2: a character outside ASCII"));
    CHECK_FALSE(parse("# \xc3\x28 invalid UTF-8 in a comment\n", error).has_value());
    CHECK(error.starts_with("test.toml:1: TOML syntax"));
    const std::string deep = std::string(5000, '[') + std::string(5000, ']');
    CHECK_FALSE(parse("a = " + deep + "\n", error).has_value());
    CHECK(error.starts_with("test.toml:1: TOML syntax"));
}

TEST_CASE("parse: a multi-fader is one entry per element, each moving its own voice") {
    std::string error;
    const auto mapping = parse("[[map]]\naddress = \"/1/multifader1\"\nparam = \"voice.*.gain\"\ncount = 4\n"
                               "[[map]]\naddress = \"/2/multixy\"\nparams = [\"voice.*.freq\", \"voice.*.gain\"]\n"
                               "curves = [\"exp\", \"linear\"]\nranges = [[110, 880], [0, 1]]\ncount = 2\n"
                               "first_index = 0\nfirst_voice = 2\n",
                               error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    CHECK(mapping->entries().size() == 6);
    for (uint32_t n = 1; n <= 4; ++n) {
        const MapEntry* fader = mapping->find("/1/multifader1/" + std::to_string(n));
        REQUIRE(fader != nullptr);
        CHECK(fader->targets[0].param == voiceGainParam(n - 1));
    }
    CHECK(mapping->find("/1/multifader1/0") == nullptr);
    CHECK(mapping->find("/1/multifader1/5") == nullptr);
    const MapEntry* pad = mapping->find("/2/multixy/1");
    REQUIRE(pad != nullptr);
    CHECK(pad->targets[0].param == voiceFreqParam(3));
    CHECK(pad->targets[0].max == 880.0);
    CHECK(pad->targets[1].param == voiceGainParam(3));
    // Each element shows its own voice.
    CHECK(mapping->showing(voiceGainParam(2)).size() == 2);
}

TEST_CASE("parse: press-only buttons set a value or panic, and show nothing") {
    std::string error;
    const auto mapping = parse("[[map]]\naddress = \"/2/push1\"\nparam = \"voice.1.freq\"\npress = 440\n"
                               "[[map]]\naddress = \"/2/push2\"\naction = \"panic\"\n",
                               error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    const MapEntry* set = mapping->find("/2/push1");
    REQUIRE(set != nullptr);
    CHECK(set->press == PressAction::SetValue);
    CHECK(set->pressValue == 440.0);
    CHECK(set->targets[0].param == voiceFreqParam(1));
    const MapEntry* panic = mapping->find("/2/push2");
    REQUIRE(panic != nullptr);
    CHECK(panic->press == PressAction::Panic);
    CHECK(panic->targets.empty());
    CHECK(mapping->showing(voiceFreqParam(1)).empty());
}

TEST_CASE("labels: formats, units and status words") {
    std::string error;
    const auto mapping = parse("[[label]]\naddress = \"/f\"\nparam = \"voice.0.freq\"\nformat = \"%.0f Hz\"\n"
                               "[[label]]\naddress = \"/g\"\nparam = \"master.gain\"\nunit = \"db\"\n"
                               "[[label]]\naddress = \"/p\"\nparam = \"voice.1.gain\"\nformat = \"%d%%\"\n"
                               "[[label]]\naddress = \"/s\"\nstatus = \"spare\"\n"
                               "[[label]]\naddress = \"/n\"\nstatus = \"failovers\"\nformat = \"%d failovers\"\n"
                               "[[label]]\naddress = \"/d\"\nparam = \"voice.0.freq\"\n",
                               error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    const auto& labels = mapping->labels();
    REQUIRE(labels.size() == 6);
    char text[128];
    const auto shown = [&](size_t label, double value) {
        formatLabel(labels[label], value, text, sizeof text);
        return std::string(text);
    };
    CHECK(shown(0, 440.0) == "440 Hz");
    CHECK(shown(0, 439.6) == "440 Hz");
    CHECK(shown(1, 0.5) == "-6.0 dB");
    CHECK(shown(1, 1.0) == "0.0 dB");
    CHECK(shown(1, 0.0) == "-inf dB");
    CHECK(shown(2, 42.4) == "42%");
    CHECK(shown(3, 1.0) == "spare warm");
    CHECK(shown(3, 0.0) == "spare cold");
    CHECK(shown(4, 3.0) == "3 failovers");
    CHECK(shown(5, 261.63) == "261.6 Hz");  // the default for a frequency
    // Cut to fit, always terminated.
    formatLabel(labels[0], 440.0, text, 4);
    CHECK(std::string(text) == "440");
}

TEST_CASE("ignore: the surface's chatter is matched by OSC patterns") {
    std::string error;
    const auto mapping = parse("ignore = [\"/*/*/z\", \"/accxyz\", \"/[0-9]\", \"/ping\"]\n"
                               "[[map]]\naddress = \"/1/fader1\"\nparam = \"master.gain\"\n",
                               error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    CHECK(mapping->ignores("/1/fader1/z"));
    CHECK(mapping->ignores("/accxyz"));
    CHECK(mapping->ignores("/3"));
    CHECK(mapping->ignores("/ping"));
    CHECK_FALSE(mapping->ignores("/1/fader1"));
    CHECK_FALSE(mapping->ignores("/1/fader1/zz"));
    CHECK_FALSE(mapping->ignores("/12"));
    CHECK_FALSE(mapping->ignores(std::string(2000, 'a')));
    CHECK_FALSE(parse("", error)->ignores("/accxyz"));
}

TEST_CASE("load: the example TouchOSC mapping") {
    std::string error;
    const auto mapping = Mapping::load(SUSTAIN_SOURCE_ROOT "/examples/touchosc.toml", kVoices, kRate, error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    const MapEntry* master = mapping->find("/1/fader1");
    REQUIRE(master != nullptr);
    CHECK(master->targets[0].param == kParamMasterGain);
    CHECK(master->targets[0].curve == Curve::Decibel);
    CHECK(master->feedbackPort == 9000);
    for (uint32_t v = 0; v < 4; ++v) {
        const MapEntry* fader = mapping->find("/1/fader" + std::to_string(v + 2));
        REQUIRE(fader != nullptr);
        CHECK(fader->targets[0].param == voiceGainParam(v));
    }
    CHECK(mapping->ignores("/1/fader1/z"));
    CHECK(mapping->ignores("/2/multifader1/z"));
    CHECK(mapping->ignores("/accxyz"));
    CHECK(mapping->ignores("/2"));
    CHECK(mapping->labels().size() == 4);
    const MapEntry* xy = mapping->find("/1/xy1");
    REQUIRE(xy != nullptr);
    REQUIRE(xy->targets.size() == 2);
    CHECK(xy->targets[0].param == voiceFreqParam(0));
    CHECK(xy->targets[0].curve == Curve::Exponential);
    CHECK(mapping->find("/1/toggle1") != nullptr);
    // With fewer voices than the file names, it is refused, naming the line.
    CHECK_FALSE(Mapping::load(SUSTAIN_SOURCE_ROOT "/examples/touchosc.toml", 2, kRate, error).has_value());
    CHECK(error.find("touchosc.toml:") != std::string::npos);
    CHECK(error.find("voice 2, but the engine has 2 voices") != std::string::npos);
}

TEST_CASE("load: the mapping of Mk1's Simple layout") {
    std::string error;
    const auto mapping = Mapping::load(SUSTAIN_SOURCE_ROOT "/examples/touchosc/mk1-simple.toml", kVoices, kRate, error);
    REQUIRE_MESSAGE(mapping.has_value(), error);
    const MapEntry* pad = mapping->find("/3/xy");
    REQUIRE(pad != nullptr);
    CHECK(pad->targets.size() == 2);
    for (int n = 1; n <= 16; ++n) {
        const MapEntry* push = mapping->find("/2/push" + std::to_string(n));
        REQUIRE(push != nullptr);
        CHECK(push->press == PressAction::SetValue);
    }
    CHECK(mapping->find("/1/fader5")->targets[0].param == kParamMasterGain);
    CHECK(mapping->ignores("/4/multitoggle/3/8"));
    CHECK(mapping->ignores("/4/toggle2"));
    CHECK(mapping->ignores("/3/xy/z"));
    CHECK_FALSE(mapping->ignores("/3/toggle2"));
}

TEST_CASE("load: missing and oversized files are refused with the path") {
    std::string error;
    CHECK_FALSE(Mapping::load("/nonexistent/sustain/mapping.toml", kVoices, kRate, error).has_value());
    CHECK(error == "/nonexistent/sustain/mapping.toml: cannot open: No such file or directory");

    const std::filesystem::path path = std::filesystem::temp_directory_path() / ("sustain-test-mapping-" + std::to_string(getpid()) + ".toml");
    {
        std::ofstream file(path, std::ios::binary);
        file << std::string(kMaxMappingFileBytes + 100, '\n');
    }
    CHECK_FALSE(Mapping::load(path.string(), kVoices, kRate, error).has_value());
    CHECK(error == path.string() + ": more than the 1048576 bytes a mapping file may have");
    {
        std::ofstream file(path, std::ios::binary | std::ios::trunc);
        file << "[[map]]\naddress = \"/x\"\nparam = \"voice.7.gain\"\n";
    }
    CHECK_FALSE(Mapping::load(path.string(), kVoices, kRate, error).has_value());
    CHECK(error.starts_with(path.string() + ":3: param: parameter \"voice.7.gain\""));
    std::filesystem::remove(path);
}
