#include "osc/osc_arguments.h"

#include <cstdio>

namespace sustain {

std::optional<double> numberArgument(char type, const lo_arg* arg) {
    switch (type) {
        case LO_INT32: return loArg<int32_t>(arg);
        case LO_FLOAT: return static_cast<double>(loArg<float>(arg));
        case LO_DOUBLE: return loArg<double>(arg);
        default: return std::nullopt;
    }
}

std::optional<double> controlArgument(char type, const lo_arg* arg) {
    if (type == LO_TRUE) return 1.0;
    if (type == LO_FALSE) return 0.0;
    return numberArgument(type, arg);
}

std::string printable(std::string_view text, size_t max) {
    std::string shown(text.substr(0, max));
    for (char& c : shown)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return shown;
}

std::string describeArgument(char type, const lo_arg* arg) {
    char text[96];
    switch (type) {
        case LO_INT32: std::snprintf(text, sizeof text, "i %d", loArg<int32_t>(arg)); break;
        case LO_FLOAT: std::snprintf(text, sizeof text, "f %g", static_cast<double>(loArg<float>(arg))); break;
        case LO_DOUBLE: std::snprintf(text, sizeof text, "d %g", loArg<double>(arg)); break;
        case LO_INT64: std::snprintf(text, sizeof text, "h %lld", static_cast<long long>(loArg<int64_t>(arg))); break;
        case LO_STRING:
        case LO_SYMBOL: {
            const std::string_view value(&arg->s);
            return std::string(1, type) + " \"" + printable(value, 32) + (value.size() > 32 ? "..." : "") + "\"";
        }
        default: std::snprintf(text, sizeof text, "%c", type); break;
    }
    return text;
}

}  // namespace sustain
