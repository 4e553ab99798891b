#include "osc/mapping.h"

#include <lo/lo_lowlevel.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>

#include "osc/param_address.h"

namespace sustain {

namespace {

// Where a file went wrong: the line (0 for the whole file) and why.
struct Problem {
    uint32_t line = 0;
    std::string reason;
};

uint32_t lineOf(const toml::node& node) { return node.source().begin.line; }

// Numbers in messages: short, and the same on every machine.
std::string num(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
}

std::string pairText(double a, double b) { return "[" + num(a) + ", " + num(b) + "]"; }

const char* typeName(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time: return "a date or time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

Problem wrongType(const toml::node& node, std::string_view key, const char* expected) {
    return {lineOf(node), std::string(key) + ": expected " + expected + ", got " + typeName(node)};
}

// The fraction 0..1 of the input range a position stands at; NaN counts as the bottom.
double inputFraction(const MapTarget& target, double position) {
    if (!(position > target.inputMin)) return 0.0;
    if (!(position < target.inputMax)) return 1.0;
    return (position - target.inputMin) / (target.inputMax - target.inputMin);
}

double clampToParam(const MapTarget& target, double value) {
    if (!(value >= target.paramMin)) return target.paramMin;  // NaN too
    if (value > target.paramMax) return target.paramMax;
    return value;
}

double decibelsToGain(double decibels) { return std::pow(10.0, decibels / 20.0); }

// "master.gain", "voice.N.freq", "voice.N.gain" (N 0-based, decimal).
std::optional<uint32_t> paramByName(std::string_view name, uint32_t voices, std::string& why) {
    if (name == "master.gain") return kParamMasterGain;
    constexpr std::string_view prefix = "voice.";
    const size_t dot = name.find('.', prefix.size());
    const bool shaped = name.starts_with(prefix) && dot != std::string_view::npos && dot > prefix.size() &&
                        dot - prefix.size() <= 6;
    const std::string_view digits = shaped ? name.substr(prefix.size(), dot - prefix.size()) : std::string_view();
    const std::string_view leaf = shaped ? name.substr(dot + 1) : std::string_view();
    const bool numeric = std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!shaped || !numeric || (leaf != "freq" && leaf != "gain")) {
        why = "unknown parameter \"" + std::string(name) + "\": expected master.gain, voice.N.freq or voice.N.gain";
        return std::nullopt;
    }
    uint32_t voice = 0;
    for (char c : digits) voice = voice * 10 + static_cast<uint32_t>(c - '0');
    if (voice >= voices) {
        why = "parameter \"" + std::string(name) + "\": voice " + std::to_string(voice) + ", but the engine has " +
              std::to_string(voices) + " voice" + (voices == 1 ? "" : "s") + " (voice.0 .. voice." +
              std::to_string(voices == 0 ? 0 : voices - 1) + ")";
        return std::nullopt;
    }
    return leaf == "freq" ? voiceFreqParam(voice) : voiceGainParam(voice);
}

std::optional<Curve> curveByName(std::string_view name) {
    if (name == "linear") return Curve::Linear;
    if (name == "exp") return Curve::Exponential;
    if (name == "db") return Curve::Decibel;
    return std::nullopt;
}

// A finite number (TOML integers count).
bool readNumber(const toml::node& node, std::string_view key, double& out, Problem& problem) {
    if (!node.is_number()) {
        problem = wrongType(node, key, "a number");
        return false;
    }
    out = node.value<double>().value_or(0.0);
    if (!std::isfinite(out)) {
        problem = {lineOf(node), std::string(key) + ": expected a finite number, got " + num(out)};
        return false;
    }
    return true;
}

// [low, high]: an array of exactly two finite numbers.
bool readPair(const toml::node& node, std::string_view key, double& low, double& high, Problem& problem) {
    const toml::array* pair = node.as_array();
    if (pair == nullptr) {
        problem = wrongType(node, key, "[low, high]");
        return false;
    }
    if (pair->size() != 2) {
        problem = {lineOf(node), std::string(key) + ": expected [low, high], got " + std::to_string(pair->size()) +
                                     " element" + (pair->size() == 1 ? "" : "s")};
        return false;
    }
    return readNumber(*pair->get(0), key, low, problem) && readNumber(*pair->get(1), key, high, problem);
}

bool readString(const toml::node& node, std::string_view key, std::string_view& out, Problem& problem) {
    const toml::value<std::string>* text = node.as_string();
    if (text == nullptr) {
        problem = wrongType(node, key, "a string");
        return false;
    }
    out = text->get();
    return true;
}

bool readPort(const toml::node& node, uint16_t& out, Problem& problem) {
    const toml::value<int64_t>* number = node.as_integer();
    if (number == nullptr) {
        problem = wrongType(node, "feedback_port", "an integer 0..65535");
        return false;
    }
    if (number->get() < 0 || number->get() > 65535) {
        problem = {lineOf(node), "feedback_port: expected 0..65535, got " + std::to_string(number->get())};
        return false;
    }
    out = static_cast<uint16_t>(number->get());
    return true;
}

// The nodes that make one target; curve, range and input may be absent (defaults).
struct TargetNodes {
    const toml::node* param = nullptr;
    const toml::node* curve = nullptr;
    const toml::node* range = nullptr;
    const toml::node* input = nullptr;
    std::string paramKey, curveKey, rangeKey, inputKey;  // "param" or "params[1]", for messages
    int64_t voice = -1;  // an element of a multi-control: the voice '*' stands for; -1: none
};

// "voice.*.gain" with '*' replaced by `voice`, the voice of one element of a multi-control.
bool substituteVoice(std::string_view text, int64_t voice, std::string& out, std::string& why) {
    const size_t star = text.find('*');
    out = text;
    if (star == std::string_view::npos) {
        if (voice >= 0) why = "with count, name the voice as '*' (e.g. voice.*.gain): each element moves its own voice";
        return voice < 0;
    }
    if (voice < 0) {
        why = "'*' stands for the voice of each element of a multi-control: give count too";
        return false;
    }
    out.replace(star, 1, std::to_string(voice));
    return true;
}

std::string validRangeText(uint32_t param, ParamRange valid, uint32_t sampleRate) {
    if (isVoiceFreqParam(param))
        return num(valid.min) + " .. " + num(valid.max) + " Hz at " + std::to_string(sampleRate) + " Hz";
    return "0 .. 1 (linear gain)";
}

bool buildTarget(const TargetNodes& nodes, uint32_t voices, uint32_t sampleRate, MapTarget& out, Problem& problem) {
    std::string_view text;
    if (!readString(*nodes.param, nodes.paramKey, text, problem)) return false;
    std::string why, paramText;
    const bool named = substituteVoice(text, nodes.voice, paramText, why);
    const std::optional<uint32_t> param = named ? paramByName(paramText, voices, why) : std::nullopt;
    if (!param) {
        problem = {lineOf(*nodes.param), nodes.paramKey + ": " + why};
        return false;
    }
    const ParamRange valid = paramRange(*param, sampleRate);
    out.param = *param;
    out.paramMin = valid.min;
    out.paramMax = valid.max;

    out.curve = Curve::Linear;
    if (nodes.curve != nullptr) {
        if (!readString(*nodes.curve, nodes.curveKey, text, problem)) return false;
        const std::optional<Curve> curve = curveByName(text);
        if (!curve) {
            problem = {lineOf(*nodes.curve),
                       nodes.curveKey + ": unknown curve \"" + std::string(text) + "\": expected linear, exp or db"};
            return false;
        }
        out.curve = *curve;
    }
    if (out.curve == Curve::Decibel && isVoiceFreqParam(out.param)) {
        problem = {lineOf(*nodes.curve), nodes.curveKey + ": curve \"db\" is for gains; " + paramText +
                                             " is a frequency (use exp or linear)"};
        return false;
    }

    out.inputMin = 0.0;
    out.inputMax = 1.0;
    if (nodes.input != nullptr) {
        if (!readPair(*nodes.input, nodes.inputKey, out.inputMin, out.inputMax, problem)) return false;
        if (!(out.inputMin < out.inputMax)) {
            problem = {lineOf(*nodes.input), nodes.inputKey + ": " + pairText(out.inputMin, out.inputMax) +
                                                 ": expected bottom < top"};
            return false;
        }
    }

    if (out.curve == Curve::Decibel) {
        out.min = -60.0;
        out.max = 0.0;
    } else {
        out.min = valid.min;
        out.max = valid.max;
    }
    if (nodes.range == nullptr) {
        if (out.curve == Curve::Exponential && out.min <= 0.0) {
            problem = {lineOf(*nodes.curve), nodes.curveKey + ": curve \"exp\" needs a range above 0; " + paramText +
                                                 " starts at 0, so give a range"};
            return false;
        }
        return true;
    }
    if (!readPair(*nodes.range, nodes.rangeKey, out.min, out.max, problem)) return false;
    const std::string rangeText = nodes.rangeKey + " " + pairText(out.min, out.max);
    const uint32_t line = lineOf(*nodes.range);
    if (out.curve == Curve::Decibel) {
        const double topDb = 20.0 * std::log10(valid.max);
        if (!(out.min < out.max)) {
            problem = {line, rangeText + " dB: expected bottom < top"};
            return false;
        }
        if (out.max > topDb) {
            problem = {line, rangeText + " dB: above " + num(topDb) + " dB, the largest gain " + paramText +
                                 " takes"};
            return false;
        }
        return true;
    }
    if (out.min == out.max) {
        problem = {line, rangeText + ": empty (both ends equal)"};
        return false;
    }
    if (out.curve == Curve::Exponential && (out.min <= 0.0 || out.max <= 0.0)) {
        problem = {line, rangeText + ": curve \"exp\" needs both ends above 0"};
        return false;
    }
    const bool inside = std::min(out.min, out.max) >= valid.min && std::max(out.min, out.max) <= valid.max;
    if (!inside) {
        problem = {line, rangeText + ": outside the valid range of " + paramText + ", " +
                             validRangeText(out.param, valid, sampleRate)};
        return false;
    }
    return true;
}

// A literal OSC path the surface sends: no pattern characters, not one of the engine's own.
bool checkAddress(std::string_view address, std::string& why) {
    if (!address.starts_with('/') || address.size() < 2) {
        why = "expected an OSC path starting with '/'";
        return false;
    }
    if (address.size() > kMaxMapAddressBytes) {
        why = std::to_string(address.size()) + " bytes, at most " + std::to_string(kMaxMapAddressBytes);
        return false;
    }
    for (char c : address) {
        if (c <= ' ' || c > '~' || std::strchr("#*,?[]{}", c) != nullptr) {
            why = "only printable ASCII without space or the pattern characters # * , ? [ ] { }";
            return false;
        }
    }
    if (address == "/engine" || address.starts_with("/engine/")) {
        why = "/engine/ addresses are the engine's own and cannot be remapped";
        return false;
    }
    return true;
}

// toml++ 3.3.0 reaches __builtin_unreachable() (undefined behaviour, in the release library
// too) on some non-ASCII characters where it checks for whitespace: outside strings and
// comments, and after a line-ending backslash in a multi-line string (its issue 190, fixed
// after 3.3.0). A mapping needs non-ASCII text nowhere but in comments, so everywhere else it
// is refused before toml++ sees it. Where this scan and TOML disagree (odd quoting), it errs
// towards refusing: only what it is sure is a comment may hold non-ASCII bytes.
// Returns the line of the first non-ASCII byte outside a comment, or 0 if there is none.
uint32_t nonAsciiOutsideComments(std::string_view text) {
    enum class In { Code, Comment, Basic, Literal, MultiBasic, MultiLiteral };
    In state = In::Code;
    uint32_t line = 1;
    const auto ascii = [&](size_t i) { return i < text.size() && static_cast<unsigned char>(text[i]) < 0x80; };
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') {
            ++line;
            if (state != In::MultiBasic && state != In::MultiLiteral) state = In::Code;
            continue;
        }
        if (!ascii(i)) {
            if (state != In::Comment) return line;
            continue;
        }
        const bool triple = (c == '"' && text.substr(i, 3) == "\"\"\"") || (c == '\'' && text.substr(i, 3) == "'''");
        switch (state) {
            case In::Code:
                if (c == '#') state = In::Comment;
                if (c == '"') state = triple ? In::MultiBasic : In::Basic;
                if (c == '\'') state = triple ? In::MultiLiteral : In::Literal;
                if ((c == '"' || c == '\'') && triple) i += 2;
                break;
            case In::Comment: break;
            case In::Basic:
            case In::MultiBasic:
                // An escape takes the next byte, unless that is a newline (counted above) or
                // not ASCII (refused above).
                if (c == '\\' && ascii(i + 1) && text[i + 1] != '\n') {
                    ++i;
                } else if (c == '"' && (state == In::Basic || triple)) {
                    if (state == In::MultiBasic) i += 2;
                    state = In::Code;
                }
                break;
            case In::Literal:
                if (c == '\'') state = In::Code;
                break;
            case In::MultiLiteral:
                if (c == '\'' && triple) {
                    i += 2;
                    state = In::Code;
                }
                break;
        }
    }
    return 0;
}

constexpr std::string_view kEntryKeys[] = {"address", "param",       "params",      "curve",  "curves",
                                           "range",   "ranges",      "input",       "inputs", "feedback_port",
                                           "count",   "first_index", "first_voice", "press",  "action"};

// An integer in [low, high].
bool readInteger(const toml::node& node, std::string_view key, int64_t low, int64_t high, int64_t& out,
                 Problem& problem) {
    const toml::value<int64_t>* number = node.as_integer();
    const std::string expected = "an integer " + std::to_string(low) + ".." + std::to_string(high);
    if (number == nullptr) {
        problem = wrongType(node, key, expected.c_str());
        return false;
    }
    if (number->get() < low || number->get() > high) {
        problem = {lineOf(node), std::string(key) + ": expected " + expected + ", got " + std::to_string(number->get())};
        return false;
    }
    out = number->get();
    return true;
}

// The targets of one control (of one element of a multi-control: `voice` is what '*' in
// the parameter names stands for, -1 when not one).
bool buildTargets(const toml::table& table, int64_t voice, uint32_t voices, uint32_t sampleRate,
                  std::vector<MapTarget>& out, Problem& problem) {
    if (const toml::node* param = table.get("param"); param != nullptr) {
        TargetNodes nodes{param, table.get("curve"), table.get("range"), table.get("input"),
                          "param", "curve", "range", "input", voice};
        MapTarget target;
        if (!buildTarget(nodes, voices, sampleRate, target, problem)) return false;
        out.push_back(target);
        return true;
    }
    const toml::node* params = table.get("params");
    const toml::array* list = params->as_array();
    if (list == nullptr) {
        problem = wrongType(*params, "params", "an array of parameter names");
        return false;
    }
    if (list->empty() || list->size() > kMaxTargetsPerEntry) {
        problem = {lineOf(*params), "params: expected 1 .. " + std::to_string(kMaxTargetsPerEntry) +
                                        " parameters, got " + std::to_string(list->size())};
        return false;
    }
    // curves, ranges, inputs: optional, and if given, one element per parameter.
    constexpr std::string_view plural[] = {"curves", "ranges", "inputs"};
    const toml::array* lists[3] = {};
    for (size_t i = 0; i < 3; ++i) {
        const toml::node* node = table.get(plural[i]);
        if (node == nullptr) continue;
        lists[i] = node->as_array();
        if (lists[i] == nullptr) {
            problem = wrongType(*node, plural[i], "an array, one element per parameter");
            return false;
        }
        if (lists[i]->size() != list->size()) {
            problem = {lineOf(*node), std::string(plural[i]) + ": " + std::to_string(lists[i]->size()) +
                                          " elements for " + std::to_string(list->size()) + " params"};
            return false;
        }
    }
    for (size_t i = 0; i < list->size(); ++i) {
        const std::string index = "[" + std::to_string(i) + "]";
        TargetNodes nodes{list->get(i),
                          lists[0] != nullptr ? lists[0]->get(i) : nullptr,
                          lists[1] != nullptr ? lists[1]->get(i) : nullptr,
                          lists[2] != nullptr ? lists[2]->get(i) : nullptr,
                          "params" + index, "curves" + index, "ranges" + index, "inputs" + index, voice};
        MapTarget target;
        if (!buildTarget(nodes, voices, sampleRate, target, problem)) return false;
        out.push_back(target);
    }
    return true;
}

// A key that must not be given with `with`, the reason said in `why`.
bool refuseWith(const toml::table& table, std::initializer_list<std::string_view> keys, std::string_view with,
                std::string_view why, Problem& problem) {
    for (const std::string_view key : keys) {
        if (const toml::node* node = table.get(key); node != nullptr) {
            problem = {lineOf(*node), std::string(key) + " does not go with " + std::string(with) + ": " +
                                          std::string(why)};
            return false;
        }
    }
    return true;
}

// The keys of a [[map]] or [[label]] table (`kind`) are all among `known` (`expected` says
// which, for the message), and its address is a literal path a surface uses.
bool readTableHead(const toml::table& table, std::span<const std::string_view> known, std::string_view kind,
                   std::string_view expected, std::string& address, Problem& problem) {
    for (const auto& [key, value] : table) {
        if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
            problem = {key.source().begin.line, "unknown key \"" + std::string(key.str()) + "\" in " +
                                                    std::string(kind) + ": expected " + std::string(expected)};
            return false;
        }
    }
    const toml::node* node = table.get("address");
    if (node == nullptr) {
        problem = {lineOf(table), std::string(kind) + " entry without an address"};
        return false;
    }
    std::string_view text;
    if (!readString(*node, "address", text, problem)) return false;
    std::string why;
    if (!checkAddress(text, why)) {
        problem = {lineOf(*node), "address \"" + std::string(text) + "\": " + why};
        return false;
    }
    address = text;
    return true;
}

// One [[map]] table: one entry, or `count` of them for a multi-control (a multi-fader sends
// ADDRESS/1 .. ADDRESS/N, each element moving its own voice).
bool parseEntry(const toml::table& table, uint16_t defaultPort, uint32_t voices, uint32_t sampleRate,
                std::vector<MapEntry>& out, Problem& problem) {
    MapEntry entry;
    entry.line = lineOf(table);
    entry.feedbackPort = defaultPort;
    if (!readTableHead(table, kEntryKeys, "[[map]]",
                       "address, param(s), curve(s), range(s), input(s), feedback_port, count, first_index, "
                       "first_voice, press, action",
                       entry.address, problem))
        return false;
    const toml::node* address = table.get("address");
    std::string_view text;
    if (const toml::node* port = table.get("feedback_port"); port != nullptr && !readPort(*port, entry.feedbackPort, problem))
        return false;

    // A panic button: nothing else to say about it.
    if (const toml::node* action = table.get("action"); action != nullptr) {
        if (!readString(*action, "action", text, problem)) return false;
        if (text != "panic") {
            problem = {lineOf(*action), "action: unknown action \"" + std::string(text) + "\": expected panic"};
            return false;
        }
        if (!refuseWith(table, {"param", "params", "curve", "curves", "range", "ranges", "input", "inputs", "press",
                                "count", "first_index", "first_voice"},
                        "action", "a panic button moves no parameter", problem))
            return false;
        entry.press = PressAction::Panic;
        out.push_back(std::move(entry));
        return true;
    }

    const toml::node* param = table.get("param");
    const toml::node* params = table.get("params");
    if ((param == nullptr) == (params == nullptr)) {
        problem = {entry.line, "[[map]] " + entry.address + ": expected either param (one argument) or params (several)"};
        return false;
    }
    // The singular keys go with param, the plural ones with params.
    constexpr std::string_view singular[] = {"curve", "range", "input"};
    constexpr std::string_view plural[] = {"curves", "ranges", "inputs"};
    for (size_t i = 0; i < 3; ++i) {
        const std::string_view wrong = param != nullptr ? plural[i] : singular[i];
        if (const toml::node* node = table.get(wrong); node != nullptr) {
            problem = {lineOf(*node), std::string(wrong) + " goes with " + (param != nullptr ? "params" : "param") +
                                          "; here use " + std::string(param != nullptr ? singular[i] : plural[i])};
            return false;
        }
    }

    const toml::node* press = table.get("press");
    if (press != nullptr) {
        if (param == nullptr) {
            problem = {lineOf(*press), "press goes with param: a press sets one parameter"};
            return false;
        }
        if (!refuseWith(table, {"curve", "range", "input"}, "press", "a press sets the one value given", problem))
            return false;
        entry.press = PressAction::SetValue;
        if (!readNumber(*press, "press", entry.pressValue, problem)) return false;
    }

    // A multi-control: count elements, addressed from first_index, moving voices from first_voice.
    int64_t count = 0, firstIndex = 1, firstVoice = 0;
    if (const toml::node* node = table.get("count"); node != nullptr) {
        if (!readInteger(*node, "count", 1, kMaxMultiCount, count, problem)) return false;
        if (const toml::node* first = table.get("first_index");
            first != nullptr && !readInteger(*first, "first_index", 0, 1'000'000, firstIndex, problem))
            return false;
        if (const toml::node* first = table.get("first_voice");
            first != nullptr && !readInteger(*first, "first_voice", 0, kMaxVoices, firstVoice, problem))
            return false;
    } else if (!refuseWith(table, {"first_index", "first_voice"}, "a single control",
                           "they number the elements of a multi-control; give count too", problem)) {
        return false;
    }

    for (int64_t element = 0; element < std::max<int64_t>(count, 1); ++element) {
        MapEntry made = entry;
        if (count > 0) {
            made.address += "/" + std::to_string(firstIndex + element);
            if (made.address.size() > kMaxMapAddressBytes) {
                problem = {lineOf(*address), "address \"" + made.address + "\": more than " +
                                                 std::to_string(kMaxMapAddressBytes) + " bytes"};
                return false;
            }
        }
        if (!buildTargets(table, count > 0 ? firstVoice + element : -1, voices, sampleRate, made.targets, problem))
            return false;
        if (press != nullptr) {
            const MapTarget& target = made.targets.front();
            if (made.pressValue < target.paramMin || made.pressValue > target.paramMax) {
                problem = {lineOf(*press), "press " + num(made.pressValue) + ": outside the valid range " +
                                               num(target.paramMin) + " .. " + num(target.paramMax)};
                return false;
            }
        }
        out.push_back(std::move(made));
    }
    return true;
}

constexpr std::string_view kLabelKeys[] = {"address", "param", "status", "unit", "format"};

// "%.1f Hz" into prefix, conversion, precision and suffix: one conversion of the kinds
// `allowed` (f, g, d, s), with an optional precision of one digit; "%%" is a literal '%'.
// The engine formats the value itself, so no text from the file ever reaches printf as a format.
bool parseFormat(std::string_view format, std::string_view allowed, LabelEntry& label, std::string& why) {
    if (format.size() > kMaxLabelFormatBytes) {
        why = std::to_string(format.size()) + " bytes, at most " + std::to_string(kMaxLabelFormatBytes);
        return false;
    }
    bool converted = false;
    label.prefix.clear();
    label.suffix.clear();
    for (size_t i = 0; i < format.size(); ++i) {
        const char c = format[i];
        if (c < ' ' || c > '~') {
            why = "only printable ASCII";
            return false;
        }
        std::string& text = converted ? label.suffix : label.prefix;
        if (c != '%') {
            text += c;
            continue;
        }
        if (i + 1 < format.size() && format[i + 1] == '%') {
            text += '%';
            ++i;
            continue;
        }
        if (converted) {
            why = "one conversion only (write %% for a percent sign)";
            return false;
        }
        size_t at = i + 1;
        label.precision = -1;
        if (at + 1 < format.size() && format[at] == '.' && format[at + 1] >= '0' && format[at + 1] <= '9') {
            label.precision = format[at + 1] - '0';
            at += 2;
        }
        if (at >= format.size() || allowed.find(format[at]) == std::string_view::npos ||
            (label.precision >= 0 && format[at] != 'f' && format[at] != 'g')) {
            why = "expected a conversion %" + std::string(allowed.size() > 1 ? "f, %.Nf, %g, %.Ng or %d" : "s") +
                  " (N one digit)";
            return false;
        }
        label.conversion = format[at];
        converted = true;
        i = at;
    }
    if (!converted) {
        why = std::string("no conversion: write where the value goes, e.g. ") +
              (allowed.size() > 1 ? "\"%.0f Hz\"" : "\"spare %s\"");
        return false;
    }
    return true;
}

bool parseLabel(const toml::table& table, uint32_t voices, LabelEntry& label, Problem& problem) {
    label.line = lineOf(table);
    if (!readTableHead(table, kLabelKeys, "[[label]]", "address, param or status, unit, format", label.address,
                       problem))
        return false;
    std::string_view text;
    std::string why;
    const toml::node* param = table.get("param");
    const toml::node* status = table.get("status");
    if ((param == nullptr) == (status == nullptr)) {
        problem = {label.line, "[[label]] " + label.address + ": expected either param or status"};
        return false;
    }
    std::string_view format;
    if (param != nullptr) {
        if (!readString(*param, "param", text, problem)) return false;
        const std::optional<uint32_t> index = paramByName(text, voices, why);
        if (!index) {
            problem = {lineOf(*param), "param: " + why};
            return false;
        }
        label.source = LabelSource::Param;
        label.param = *index;
        format = isVoiceFreqParam(*index) ? "%.1f Hz" : "%.2f";
        if (const toml::node* unit = table.get("unit"); unit != nullptr) {
            if (!readString(*unit, "unit", text, problem)) return false;
            if (text != "db" || isVoiceFreqParam(*index)) {
                problem = {lineOf(*unit), "unit: expected \"db\", for a gain (shown in decibels)"};
                return false;
            }
            label.decibels = true;
            format = "%.1f dB";
        }
    } else {
        if (!readString(*status, "status", text, problem)) return false;
        if (text == "spare") {
            label.source = LabelSource::Spare;
            format = "spare %s";
        } else if (text == "failovers") {
            label.source = LabelSource::Failovers;
            format = "failovers %d";
        } else if (text == "crashes") {
            label.source = LabelSource::Crashes;
            format = "crashes %d";
        } else {
            problem = {lineOf(*status), "status: unknown \"" + std::string(text) + "\": expected spare, failovers or crashes"};
            return false;
        }
        if (!refuseWith(table, {"unit"}, "status", "only a gain parameter has a unit to choose", problem)) return false;
    }
    const toml::node* formatNode = table.get("format");
    if (formatNode != nullptr && !readString(*formatNode, "format", format, problem)) return false;
    const std::string_view allowed = label.source == LabelSource::Spare ? "s" : "fgd";
    if (!parseFormat(format, allowed, label, why)) {
        problem = {formatNode != nullptr ? lineOf(*formatNode) : label.line, "format \"" + std::string(format) + "\": " + why};
        return false;
    }
    return true;
}

// The top-level `ignore` list: OSC address patterns of what a surface sends that means
// nothing to the engine.
bool parseIgnore(const toml::node& node, std::vector<std::string>& out, Problem& problem) {
    const toml::array* list = node.as_array();
    if (list == nullptr) {
        problem = wrongType(node, "ignore", "an array of OSC address patterns");
        return false;
    }
    if (list->size() > kMaxIgnorePatterns) {
        problem = {lineOf(node), "ignore: more than " + std::to_string(kMaxIgnorePatterns) + " patterns"};
        return false;
    }
    for (size_t i = 0; i < list->size(); ++i) {
        std::string_view text;
        const std::string key = "ignore[" + std::to_string(i) + "]";
        if (!readString(*list->get(i), key, text, problem)) return false;
        const auto printableChar = [](char c) { return c > ' ' && c <= '~' && c != '#' && c != ','; };
        const auto stars = static_cast<size_t>(std::count(text.begin(), text.end(), '*'));
        std::string why;
        if (!text.starts_with('/') || text.size() > kMaxMapAddressBytes ||
            !std::all_of(text.begin(), text.end(), printableChar)) {
            why = "expected an OSC address pattern: starts with '/', printable ASCII without space, # or ',', at most " +
                  std::to_string(kMaxMapAddressBytes) + " bytes";
        } else if (stars > kMaxIgnorePatternStars) {
            why = "at most " + std::to_string(kMaxIgnorePatternStars) + " '*'";
        } else if (text == "/engine" || text.starts_with("/engine/")) {
            why = "the engine's own addresses cannot be ignored";
        }
        if (!why.empty()) {
            std::string reason = key;
            reason += " \"";
            reason += text;
            reason += "\": ";
            reason += why;
            problem = {lineOf(*list->get(i)), std::move(reason)};
            return false;
        }
        out.emplace_back(text);
    }
    return true;
}

// An array of tables ([[map]], [[label]]), or nothing.
const toml::array* tablesOf(const toml::table& root, std::string_view key, Problem& problem, bool& ok) {
    const toml::node* node = root.get(key);
    ok = true;
    if (node == nullptr) return nullptr;
    const toml::array* list = node->as_array();
    if (list == nullptr || !list->is_array_of_tables()) {
        problem = wrongType(*node, key, ("[[" + std::string(key) + "]] entries (an array of tables)").c_str());
        ok = false;
    }
    return ok ? list : nullptr;
}

bool parseDocument(const toml::table& root, uint32_t voices, uint32_t sampleRate, std::vector<MapEntry>& entries,
                   std::vector<LabelEntry>& labels, std::vector<std::string>& ignored, Problem& problem) {
    uint16_t defaultPort = 0;
    for (const auto& [key, value] : root) {
        if (key.str() != "feedback_port" && key.str() != "map" && key.str() != "label" && key.str() != "ignore") {
            problem = {key.source().begin.line, "unknown key \"" + std::string(key.str()) +
                                                    "\": expected feedback_port, ignore, [[map]] or [[label]] entries"};
            return false;
        }
    }
    if (const toml::node* port = root.get("feedback_port"); port != nullptr && !readPort(*port, defaultPort, problem))
        return false;
    if (const toml::node* ignore = root.get("ignore"); ignore != nullptr && !parseIgnore(*ignore, ignored, problem))
        return false;
    bool ok = true;
    if (const toml::array* list = tablesOf(root, "map", problem, ok); list != nullptr) {
        for (const toml::node& node : *list) {
            if (!parseEntry(*node.as_table(), defaultPort, voices, sampleRate, entries, problem)) return false;
            // Counted after multi-controls are expanded: every entry costs the same.
            if (entries.size() > kMaxMapEntries) {
                problem = {lineOf(node), "more than " + std::to_string(kMaxMapEntries) +
                                             " [[map]] entries (a multi-control counts each element)"};
                return false;
            }
        }
    }
    if (!ok) return false;
    if (const toml::array* list = tablesOf(root, "label", problem, ok); list != nullptr) {
        for (const toml::node& node : *list) {
            if (labels.size() == kMaxMapEntries) {
                problem = {lineOf(node), "more than " + std::to_string(kMaxMapEntries) + " [[label]] entries"};
                return false;
            }
            LabelEntry label;
            if (!parseLabel(*node.as_table(), voices, label, problem)) return false;
            labels.push_back(std::move(label));
        }
    }
    if (!ok) return false;
    // Sorted for find(); stable, so of two equal addresses the one earlier in the file comes first.
    std::stable_sort(entries.begin(), entries.end(),
                     [](const MapEntry& a, const MapEntry& b) { return a.address < b.address; });
    // Each address once, controls and labels together.
    std::vector<std::pair<std::string_view, uint32_t>> used;
    used.reserve(entries.size() + labels.size());
    for (const MapEntry& entry : entries) used.emplace_back(entry.address, entry.line);
    for (const LabelEntry& label : labels) used.emplace_back(label.address, label.line);
    std::stable_sort(used.begin(), used.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < used.size(); ++i) {
        if (used[i].first == used[i - 1].first) {
            const uint32_t first = std::min(used[i].second, used[i - 1].second);
            problem = {std::max(used[i].second, used[i - 1].second),
                       "address \"" + std::string(used[i].first) + "\" is mapped twice (first at line " +
                           std::to_string(first) + ")"};
            return false;
        }
    }
    return true;
}

}  // namespace

const char* curveName(Curve curve) {
    switch (curve) {
        case Curve::Linear: return "linear";
        case Curve::Exponential: return "exp";
        case Curve::Decibel: return "db";
    }
    return "unknown";
}

double curveToValue(const MapTarget& target, double position) {
    const double x = inputFraction(target, position);
    double value = 0.0;
    switch (target.curve) {
        case Curve::Linear: value = std::lerp(target.min, target.max, x); break;
        case Curve::Exponential:
            // The ends exactly, whatever pow rounds to in between.
            value = x == 0.0   ? target.min
                    : x == 1.0 ? target.max
                               : target.min * std::pow(target.max / target.min, x);
            break;
        case Curve::Decibel:
            // The fader's bottom is silence, not the range's lowest level.
            value = x == 0.0 ? 0.0 : decibelsToGain(std::lerp(target.min, target.max, x));
            break;
    }
    return clampToParam(target, value);
}

double valueToCurve(const MapTarget& target, double value) {
    double x = 0.0;
    switch (target.curve) {
        case Curve::Linear:
            if (target.max != target.min) x = (value - target.min) / (target.max - target.min);
            break;
        case Curve::Exponential:
            if (value > 0.0 && target.min > 0.0 && target.max > 0.0 && target.max != target.min)
                x = std::log(value / target.min) / std::log(target.max / target.min);
            break;
        case Curve::Decibel:
            if (value >= decibelsToGain(target.min) && target.max > target.min)
                x = (20.0 * std::log10(value) - target.min) / (target.max - target.min);
            break;
    }
    if (!(x > 0.0)) x = 0.0;  // NaN too
    if (x > 1.0) x = 1.0;
    return std::lerp(target.inputMin, target.inputMax, x);
}

std::optional<MapTarget> normalisedAlias(std::string_view address, uint32_t voices, uint32_t sampleRate) {
    constexpr std::string_view suffix = "/norm";
    if (!address.ends_with(suffix)) return std::nullopt;
    const AddressMatch match = matchParamAddress(address.substr(0, address.size() - suffix.size()), voices);
    if (match.error != RejectReason::None) return std::nullopt;
    const ParamRange valid = paramRange(match.param, sampleRate);
    MapTarget target;
    target.param = match.param;
    target.paramMin = valid.min;
    target.paramMax = valid.max;
    if (isVoiceFreqParam(match.param)) {
        target.curve = Curve::Exponential;
        target.min = std::min(kNormFreqMinHz, valid.max);
        target.max = valid.max;
    } else {
        target.curve = Curve::Linear;
        target.min = valid.min;
        target.max = valid.max;
    }
    return target;
}

std::optional<Mapping> Mapping::parse(std::string_view tomlText, uint32_t voices, uint32_t sampleRate,
                                      std::string& error, std::string_view sourceName) {
    const std::string source(sourceName);
    if (tomlText.size() > kMaxMappingFileBytes) {
        error = source + ": " + std::to_string(tomlText.size()) + " bytes, more than the " +
                std::to_string(kMaxMappingFileBytes) + " a mapping file may have";
        return std::nullopt;
    }
    if (const uint32_t line = nonAsciiOutsideComments(tomlText); line != 0) {
        error = source + ":" + std::to_string(line) +
                ": a character outside ASCII: mapping files may have those in comments only";
        return std::nullopt;
    }
    Mapping mapping;
    Problem problem;
    bool ok = false;
    // toml++ reports syntax errors by throwing; nothing else here is expected to, but no
    // input may end the process, so everything is caught and reported.
    try {
        const toml::table root = toml::parse(tomlText, std::string_view(source));
        ok = parseDocument(root, voices, sampleRate, mapping.entries_, mapping.labels_, mapping.ignored_, problem);
    } catch (const toml::parse_error& e) {
        problem = {e.source().begin.line, "TOML syntax: " + std::string(e.description())};
    } catch (const std::exception& e) {
        problem = {0, std::string("cannot parse: ") + e.what()};
    }
    if (!ok) {
        error = source + ":" + (problem.line != 0 ? std::to_string(problem.line) + ":" : "") + " " + problem.reason;
        return std::nullopt;
    }
    // The reverse index: a counting sort of (entry, argument) by parameter.
    // Press-only buttons show nothing: a value fed back would light them.
    const auto shows = [](const MapEntry& entry) { return entry.press == PressAction::None; };
    for (const MapEntry& entry : mapping.entries_)
        for (const MapTarget& target : entry.targets)
            if (shows(entry)) ++mapping.refStart_[target.param + 1];
    for (uint32_t p = 0; p < kParamCount; ++p) mapping.refStart_[p + 1] += mapping.refStart_[p];
    mapping.refs_.resize(mapping.refStart_[kParamCount]);
    std::array<uint32_t, kParamCount> next{};
    std::copy(mapping.refStart_.begin(), mapping.refStart_.end() - 1, next.begin());
    for (uint32_t e = 0; e < mapping.entries_.size(); ++e) {
        const MapEntry& entry = mapping.entries_[e];
        if (!shows(entry)) continue;
        for (uint32_t a = 0; a < entry.targets.size(); ++a) mapping.refs_[next[entry.targets[a].param]++] = {e, a};
    }
    return mapping;
}

std::optional<Mapping> Mapping::load(const std::string& path, uint32_t voices, uint32_t sampleRate,
                                     std::string& error) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        error = path + ": cannot open: " + std::strerror(errno);
        return std::nullopt;
    }
    // Read one byte past the limit, so an oversized (or endless) file is refused unread.
    std::string text(kMaxMappingFileBytes + 1, '\0');
    file.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (file.bad()) {
        error = path + ": cannot read: " + std::strerror(errno);
        return std::nullopt;
    }
    text.resize(static_cast<size_t>(file.gcount()));
    if (text.size() > kMaxMappingFileBytes) {
        error = path + ": more than the " + std::to_string(kMaxMappingFileBytes) + " bytes a mapping file may have";
        return std::nullopt;
    }
    return parse(text, voices, sampleRate, error, path);
}

const MapEntry* Mapping::find(std::string_view address) const {
    const auto at = std::lower_bound(entries_.begin(), entries_.end(), address,
                                     [](const MapEntry& e, std::string_view a) { return std::string_view(e.address) < a; });
    return at != entries_.end() && at->address == address ? &*at : nullptr;
}

std::span<const MapRef> Mapping::showing(uint32_t param) const {
    if (param >= kParamCount) return {};
    return std::span<const MapRef>(refs_).subspan(refStart_[param], refStart_[param + 1] - refStart_[param]);
}

bool Mapping::ignores(std::string_view address) const {
    if (ignored_.empty() || address.size() > kMaxIgnoredAddressBytes) return false;
    char text[kMaxIgnoredAddressBytes + 1];  // liblo's matcher wants a terminated string
    std::memcpy(text, address.data(), address.size());
    text[address.size()] = '\0';
    return std::any_of(ignored_.begin(), ignored_.end(),
                       [&text](const std::string& pattern) { return lo_pattern_match(text, pattern.c_str()) != 0; });
}

void formatLabel(const LabelEntry& label, double value, char* out, size_t size) {
    char number[64];
    if (label.conversion == 's') {
        std::snprintf(number, sizeof number, "%s", value != 0.0 ? "warm" : "cold");
    } else if (label.decibels && !(value > 0.0)) {
        std::snprintf(number, sizeof number, "-inf");
    } else {
        const double shown = label.decibels ? 20.0 * std::log10(value) : value;
        if (!std::isfinite(shown)) {
            std::snprintf(number, sizeof number, "-");
        } else if (label.conversion == 'd') {
            std::snprintf(number, sizeof number, "%lld", std::llround(std::clamp(shown, -1e15, 1e15)));
        } else if (label.precision >= 0) {
            std::snprintf(number, sizeof number, label.conversion == 'f' ? "%.*f" : "%.*g", label.precision, shown);
        } else {
            std::snprintf(number, sizeof number, label.conversion == 'f' ? "%f" : "%g", shown);
        }
    }
    std::snprintf(out, size, "%s%s%s", label.prefix.c_str(), number, label.suffix.c_str());
}

}  // namespace sustain
