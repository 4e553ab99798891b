#include "osc/message_validator.h"

#include <cmath>
#include <cstdio>

#include "osc/osc_arguments.h"

namespace sustain {

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
    const std::optional<double> number = numberArgument(types[0], argv[0]);
    if (!number) {
        result.error = RejectReason::BadType;
        result.why = "expected f, i or d, got " + describeArgument(types[0], argv[0]);
        return result;
    }
    double value = *number;
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
    result.param = match.param;
    result.value = value;
    return result;
}

}  // namespace sustain
