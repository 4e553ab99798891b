// The one decoder of OSC arguments: every path that reads a number from a message (engine
// addresses, control-surface addresses, requests such as /engine/notify) reads it here.
#pragma once

#include <lo/lo.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace sustain {

/// An argument liblo parsed, read without assuming alignment: liblo packs arguments at
/// 4-byte boundaries, and lo_arg is an 8-byte union, so `arg->d` may be a misaligned read.
/// Thread: any.  RT-safe: yes.
template <typename T>
T loArg(const lo_arg* argument) {
    T value;
    std::memcpy(&value, argument, sizeof value);
    return value;
}

/// A number: i, f or d, as a double (not checked for finiteness); nothing for any other
/// type. An int64 (h) is not a number here: no parameter needs its range, and a client
/// that sends one has a bug worth an error. Thread: any.  RT-safe: yes.
std::optional<double> numberArgument(char type, const lo_arg* arg);

/// What a control surface sends: a number, or T / F (a toggle button) as 1 / 0.
/// Thread: any.  RT-safe: yes.
std::optional<double> controlArgument(char type, const lo_arg* arg);

/// A client's text made fit for one log line: at most `max` bytes, control characters as
/// '?', so that no bytes a client sends can forge log lines. Thread: any.  RT-safe: no.
std::string printable(std::string_view text, size_t max);

/// Describes one OSC argument for an error text: `s "loud"`, `f 0.5`, `T`.
/// Thread: any.  RT-safe: no.
std::string describeArgument(char type, const lo_arg* arg);

}  // namespace sustain
