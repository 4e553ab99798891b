#include "osc/message_validator.h"

#include <cmath>
#include <cstdio>

namespace sustain {

std::string describeArgument(char type, const lo_arg* arg) {
    char text[96];
    switch (type) {
        case LO_INT32: std::snprintf(text, sizeof text, "i %d", arg->i); break;
        case LO_FLOAT: std::snprintf(text, sizeof text, "f %g", static_cast<double>(arg->f)); break;
        case LO_DOUBLE: std::snprintf(text, sizeof text, "d %g", arg->d); break;
        case LO_INT64: std::snprintf(text, sizeof text, "h %lld", static_cast<long long>(arg->h)); break;
        case LO_STRING:
        case LO_SYMBOL: {
            std::string value(&arg->s);
            if (value.size() > 32) {
                value.resize(32);
                value += "...";
            }
            for (char& c : value)
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
            return std::string(1, type) + " \"" + value + "\"";
        }
        default: std::snprintf(text, sizeof text, "%c", type); break;
    }
    return text;
}

ValidatedChange validateMessage(std::string_view path, lo_message message, uint32_t voices, uint32_t sampleRate) {
    ValidatedChange result;
    const AddressMatch match = matchParamAddress(path, voices);
    if (match.error == RejectReason::UnknownAddress) {
        result.error = match.error;
        result.why = "unknown address";
        return result;
    }
    if (match.error == RejectReason::OutOfRange) {
        result.error = match.error;
        result.why = "no such voice (this engine has " + std::to_string(voices) + " voices, 0.." +
                     std::to_string(voices - 1) + ")";
        return result;
    }
    const int argc = lo_message_get_argc(message);
    const char* types = lo_message_get_types(message);
    lo_arg** argv = lo_message_get_argv(message);
    if (argc != 1 || types == nullptr) {
        result.error = RejectReason::ArgCount;
        result.why = "expected 1 argument (f, i or d), got " + std::to_string(argc);
        return result;
    }
    double value = 0.0;
    switch (types[0]) {
        case LO_INT32: value = argv[0]->i; break;
        case LO_FLOAT: value = static_cast<double>(argv[0]->f); break;
        case LO_DOUBLE: value = argv[0]->d; break;
        default:
            result.error = RejectReason::BadType;
            result.why = "expected f, i or d, got " + describeArgument(types[0], argv[0]);
            return result;
    }
    if (!std::isfinite(value)) {
        result.error = RejectReason::NotFinite;
        result.why = "expected a finite number, got " + describeArgument(types[0], argv[0]);
        return result;
    }
    const ParamRange range = paramRange(match.param, sampleRate);
    if (value < range.min || value > range.max) {
        char text[128];
        std::snprintf(text, sizeof text, "%g is out of range [%g, %g]", value, range.min, range.max);
        result.error = RejectReason::OutOfRange;
        result.why = text;
        return result;
    }
    // Denormal-sized gains are silence; keep them out of the audio path.
    if (std::fabs(value) < 1e-12) value = 0.0;
    result.param = match.param;
    result.value = value;
    return result;
}

}  // namespace sustain
