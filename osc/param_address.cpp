#include "osc/param_address.h"

#include <algorithm>

#include "shm/layout.h"

namespace sustain {

const char* reasonName(RejectReason reason) {
    switch (reason) {
        case RejectReason::None: return "none";
        case RejectReason::Malformed: return "malformed";
        case RejectReason::UnknownAddress: return "unknown_address";
        case RejectReason::BadType: return "bad_type";
        case RejectReason::ArgCount: return "arg_count";
        case RejectReason::NotFinite: return "not_finite";
        case RejectReason::OutOfRange: return "out_of_range";
        case RejectReason::Oversize: return "oversize";
    }
    return "unknown";
}

AddressMatch matchParamAddress(std::string_view path, uint32_t voices) {
    if (path == "/engine/gain") return {RejectReason::None, kParamMasterGain};
    if (path == "/engine/freq") return {RejectReason::None, voiceFreqParam(0)};
    constexpr std::string_view prefix = "/engine/voice/";
    if (!path.starts_with(prefix)) return {RejectReason::UnknownAddress, 0};
    std::string_view rest = path.substr(prefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash > 6) return {RejectReason::UnknownAddress, 0};
    uint32_t voice = 0;
    for (char c : rest.substr(0, slash)) {
        if (c < '0' || c > '9') return {RejectReason::UnknownAddress, 0};
        voice = voice * 10 + static_cast<uint32_t>(c - '0');
    }
    const std::string_view leaf = rest.substr(slash + 1);
    uint32_t param = 0;
    if (leaf == "freq") {
        param = 1;
    } else if (leaf == "gain") {
        param = 2;
    } else {
        return {RejectReason::UnknownAddress, 0};
    }
    if (voice >= voices) return {RejectReason::OutOfRange, 0};
    return {RejectReason::None, param == 1 ? voiceFreqParam(voice) : voiceGainParam(voice)};
}

ParamRange paramRange(uint32_t param, uint32_t sampleRate) {
    if (param == kParamMasterGain || !isVoiceFreqParam(param)) return {0.0, 1.0};
    // Stay clearly below Nyquist: a sine near rate/2 aliases and sounds like noise.
    return {kMinFreqHz, std::min(kMaxFreqHz, 0.45 * static_cast<double>(sampleRate))};
}

std::string paramAddress(uint32_t param) {
    if (param == kParamMasterGain) return "/engine/gain";
    if (voiceOfParam(param) == 0 && isVoiceFreqParam(param)) return "/engine/freq";
    return longParamAddress(param);
}

std::string longParamAddress(uint32_t param) {
    if (param == kParamMasterGain) return "/engine/gain";
    const char* leaf = isVoiceFreqParam(param) ? "freq" : "gain";
    return "/engine/voice/" + std::to_string(voiceOfParam(param)) + "/" + leaf;
}

}  // namespace sustain
