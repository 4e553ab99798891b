// The OSC address space of the engine's parameters, and its validation rules.
//
//   /engine/gain              master gain, linear 0..1
//   /engine/freq              frequency of voice 0, Hz
//   /engine/voice/<n>/freq    frequency of voice n (0-based), Hz
//   /engine/voice/<n>/gain    gain of voice n, linear 0..1
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sustain {

inline constexpr double kMinFreqHz = 1.0;
inline constexpr double kMaxFreqHz = 20000.0;
/// Values closer to 0 than this (-240 dB, far below any converter's resolution) are set to
/// exactly 0 before they reach a parameter (OscServer::submitChange), whatever address or
/// curve they came through: tiny values only make denormals in the audio path.
inline constexpr double kTinyValue = 1e-12;

/// Why a message never reaches a worker. Each reason has its own counter in OscMetrics.
enum class RejectReason : uint8_t { None, Malformed, UnknownAddress, BadType, ArgCount, NotFinite, OutOfRange, Oversize };

/// Short stable name of a reason ("bad_type", ...), as used in logs and status.
const char* reasonName(RejectReason reason);

struct AddressMatch {
    RejectReason error = RejectReason::None;  // UnknownAddress or OutOfRange (no such voice)
    uint32_t param = 0;                       // valid when error == None
};

/// Maps an OSC address to a parameter index of shm/layout.h.
/// Thread: any.  RT-safe: yes (no allocation).
AddressMatch matchParamAddress(std::string_view path, uint32_t voices);

/// The valid range of a parameter, given the sample rate (frequencies stay below Nyquist).
struct ParamRange {
    double min;
    double max;
};
ParamRange paramRange(uint32_t param, uint32_t sampleRate);

/// The OSC address of a parameter ("/engine/voice/2/gain"; voice 0's frequency is
/// "/engine/freq"), for logs and replies.
std::string paramAddress(uint32_t param);

/// The same, always in the /engine/voice/<n>/ form ("/engine/voice/0/freq").
std::string longParamAddress(uint32_t param);

}  // namespace sustain
