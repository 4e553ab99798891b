// Control-surface mapping: what a surface's own OSC addresses (TouchOSC's /1/fader1, an xy
// pad's /1/xy1) change in the engine, through which curve, and where feedback goes.
//
// A mapping file is TOML, ASCII but for comments, at most 1 MiB and 256 entries
// (docs/mapping.md has the whole contract):
//
//   feedback_port = 9000            # optional; default for every entry (0: reply to the
//                                   # port the surface sent from, the default)
//   [[map]]
//   address = "/1/fader1"           # a literal OSC path, not under /engine/
//   param = "master.gain"           # master.gain, voice.N.freq, voice.N.gain (N 0-based)
//   curve = "db"                    # linear (default), exp, db
//   range = [-60.0, 0.0]            # parameter values at the ends (dB for db);
//                                   # default: the parameter's valid range, [-60, 0] for db
//   input = [0.0, 1.0]              # optional: what the control sends at its ends
//   feedback_port = 9001            # optional: overrides the file's default
//
//   [[map]]
//   address = "/1/xy1"              # one float per parameter, in order
//   params = ["voice.0.freq", "voice.0.gain"]
//   curves = ["exp", "linear"]      # optional, one per parameter
//   ranges = [[110.0, 1760.0], [0.0, 1.0]]
//   inputs = [[0.0, 1.0], [0.0, 1.0]]   # optional
//
//   [[map]]
//   address = "/2/multifader1"      # count: a multi-control, ADDRESS/1 .. ADDRESS/4, each
//   count = 4                       # moving its own voice ('*'); first_index, first_voice
//   param = "voice.*.gain"          # say where the numbering starts (1 and 0)
//
//   [[map]]                         # press-only buttons: a press (> 0) acts, the release not
//   address = "/2/push1"
//   param = "voice.0.freq"
//   press = 440.0                   # ... sets this value; or action = "panic" instead
//
//   [[label]]                       # text the engine keeps up to date on the surface
//   address = "/1/freq0"
//   param = "voice.0.freq"          # or status = "spare", "failovers", "crashes"
//   format = "%.0f Hz"              # one conversion: %f %.Nf %g %.Ng %d (%s: spare's word)
//
//   ignore = ["/*/*/z", "/accxyz"]  # top level: OSC patterns of chatter, counted not refused
//
// Curves, for x = the control's position scaled from its input range to 0..1 (clamped):
//   linear:  min + x (max - min)
//   exp:     min (max / min)^x              (0 < min, 0 < max: frequencies)
//   db:      0 at x = 0 exactly (the fader's bottom is silence), else 10^(dB / 20) with
//            dB = min + x (max - min)        (gains; max <= 0 dB)
// Every value is then clamped to the parameter's valid range (osc/param_address.h).
//
// Built in, with no file: /engine/voice/<n>/freq/norm, /engine/freq/norm (voice 0):
// exponential from 20 Hz to the highest valid frequency, min(20000, 0.45 x rate);
// /engine/voice/<n>/gain/norm, /engine/gain/norm (master): linear 0..1.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shm/layout.h"

namespace sustain {

inline constexpr uint32_t kMaxMapEntries = 256;         // more entries: the file is refused
inline constexpr uint32_t kMaxTargetsPerEntry = 16;      // float arguments of one control
inline constexpr size_t kMaxMappingFileBytes = 1 << 20;  // 1 MiB
inline constexpr size_t kMaxMapAddressBytes = 256;
inline constexpr uint32_t kMaxIgnorePatterns = 64;
inline constexpr size_t kMaxIgnorePatternStars = 4;     // keeps liblo's backtracking matcher cheap
inline constexpr uint32_t kMaxMultiCount = 128;          // elements of one multi-fader entry
inline constexpr size_t kMaxLabelFormatBytes = 64;
inline constexpr size_t kMaxIgnoredAddressBytes = 1024;
inline constexpr double kNormFreqMinHz = 20.0;           // bottom of the .../freq/norm aliases

enum class Curve : uint8_t { Linear, Exponential, Decibel };

/// The spelling used in mapping files: "linear", "exp", "db".
const char* curveName(Curve curve);

/// One float argument of a control, mapped to one parameter.
struct MapTarget {
    uint32_t param = 0;            // index of shm/layout.h
    double min = 0.0;              // parameter value at the input's bottom (dB for Decibel)
    double max = 1.0;              // parameter value at the input's top (dB for Decibel)
    Curve curve = Curve::Linear;
    double inputMin = 0.0;         // what the control sends at its bottom
    double inputMax = 1.0;         // ... and at its top; inputMin < inputMax
    double paramMin = 0.0;         // the parameter's valid range (paramRange()); every value
    double paramMax = 1.0;         // is clamped to it. parse() and normalisedAlias() fill it.
};

/// What a press-only button does when pressed; its release does nothing.
enum class PressAction : uint8_t {
    None,      // not a press-only button: every value moves the targets
    SetValue,  // sets targets[0]'s parameter to MapEntry::pressValue
    Panic,     // as /engine/panic: master gain 0, timed changes dropped
};

/// One control-surface address.
struct MapEntry {
    std::string address;
    std::vector<MapTarget> targets;  // one per float argument: a fader has one, an xy pad two
    uint16_t feedbackPort = 0;       // 0: reply to the port the client sent from
    uint32_t line = 0;               // line of the entry's [[map]] in the file, for messages
    PressAction press = PressAction::None;
    double pressValue = 0.0;         // for SetValue, in the parameter's units
};

/// What a text label on the surface shows.
enum class LabelSource : uint8_t {
    Param,      // a parameter's value (LabelEntry::param)
    Spare,      // whether the standby worker renders in step: "warm" or "cold"
    Failovers,  // failovers since start
    Crashes,    // worker crashes since start
};

/// A text label the engine keeps up to date: it sends `address` one string, made from
/// `prefix`, the value in the conversion, and `suffix` (the file's `format`, e.g. "%.0f Hz").
struct LabelEntry {
    std::string address;
    LabelSource source = LabelSource::Param;
    uint32_t param = 0;              // for Param
    bool decibels = false;           // Param, a gain: shown in dB ("-inf" for silence)
    char conversion = 'g';           // 'f', 'g' or 'd' for numbers, 's' for Spare's word
    int precision = -1;              // digits after the point for 'f' and 'g'; -1: the default
    std::string prefix, suffix;
    uint32_t line = 0;
};

/// The label's text for `value` (Param: in the parameter's units; Failovers, Crashes: the
/// count; Spare: 1 warm, 0 cold), written to `out` (always terminated, cut to fit).
/// Thread: any.  RT-safe: yes (no allocation; snprintf).
void formatLabel(const LabelEntry& label, double value, char* out, size_t size);

/// Where a parameter is shown: argument `argument` of entries()[entry].
struct MapRef {
    uint32_t entry;
    uint32_t argument;
};

/// Maps a control position to a parameter value through the target's curve. The position is
/// clamped to the input range first (NaN counts as the bottom; callers reject non-finite
/// arguments before this), the result to the parameter's valid range.
/// Thread: any.  RT-safe: yes (no allocation; calls pow).
double curveToValue(const MapTarget& target, double position);

/// The inverse of curveToValue(), for feedback to the surface: the position that shows
/// `value`. A value the curve cannot reach is shown at the nearest end; for Decibel, values
/// below the gain of `min` dB show at the bottom (where the fader means silence).
/// Thread: any.  RT-safe: yes (no allocation; calls log).
double valueToCurve(const MapTarget& target, double value);

/// The built-in normalised address for `address` (see the top of this file), or nothing if
/// it is not one or names a voice at or beyond `voices`.
/// Thread: any.  RT-safe: yes (no allocation).
std::optional<MapTarget> normalisedAlias(std::string_view address, uint32_t voices, uint32_t sampleRate);

/// A parsed, checked mapping file. Immutable once built: its const members may be called
/// from several threads at once. A reload builds a new Mapping and swaps it in whole.
class Mapping {
public:
    /// Parses and checks a mapping file's text. On failure, returns nothing and sets `error`
    /// to "SOURCE:LINE: reason" (the line of the offending key or entry; whole-file problems
    /// such as the size have no line: "SOURCE: reason").
    /// Thread: any non-RT thread.  RT-safe: no (allocates).
    /// Errors: TOML syntax; wrong types; unknown keys; unknown parameter or voice at or beyond
    /// `voices`; range outside the parameter's valid range or empty; exp with min <= 0;
    /// db on a frequency; unknown curve; missing, duplicate or malformed address; more than
    /// kMaxMapEntries entries or kMaxTargetsPerEntry parameters; more than
    /// kMaxMappingFileBytes bytes.
    static std::optional<Mapping> parse(std::string_view tomlText, uint32_t voices, uint32_t sampleRate,
                                        std::string& error, std::string_view sourceName = "mapping");

    /// Reads `path` (refusing files over kMaxMappingFileBytes before reading them whole) and
    /// parses it; messages name `path`.
    /// Thread: any non-RT thread.  RT-safe: no (file I/O, allocates).
    /// Errors: as parse(), and "PATH: cannot open: REASON".
    static std::optional<Mapping> load(const std::string& path, uint32_t voices, uint32_t sampleRate,
                                       std::string& error);

    /// The entry for an exact OSC address, or nullptr. Binary search over sorted entries.
    /// Thread: any.  RT-safe: yes (no allocation).
    const MapEntry* find(std::string_view address) const;

    /// Every entry, sorted by address.
    /// Thread: any.  RT-safe: yes.
    const std::vector<MapEntry>& entries() const { return entries_; }

    /// Where `param` is shown, for feedback: (entry, argument) pairs in entry order; empty
    /// for a parameter no entry maps or an index at or beyond kParamCount. Press-only
    /// buttons show nothing (a value fed back would light them).
    /// Thread: any.  RT-safe: yes (no allocation).
    std::span<const MapRef> showing(uint32_t param) const;

    /// Every text label, in file order.
    /// Thread: any.  RT-safe: yes.
    const std::vector<LabelEntry>& labels() const { return labels_; }

    /// Whether the surface's literal `address` is one the file says to ignore (`ignore`:
    /// touch and accelerometer chatter, page changes); such messages are counted, not
    /// refused. Addresses longer than kMaxIgnoredAddressBytes are never ignored.
    /// Thread: any.  RT-safe: yes (no allocation; liblo's pattern matcher).
    bool ignores(std::string_view address) const;

    /// How many patterns the ignore list has. Thread: any.  RT-safe: yes.
    size_t ignoredPatterns() const { return ignored_.size(); }

private:
    std::vector<MapEntry> entries_;
    std::vector<LabelEntry> labels_;
    std::vector<std::string> ignored_;               // OSC address patterns
    std::vector<MapRef> refs_;                       // sorted by parameter
    std::array<uint32_t, kParamCount + 1> refStart_{};  // refs of param p: [refStart_[p], refStart_[p+1])
};

}  // namespace sustain
