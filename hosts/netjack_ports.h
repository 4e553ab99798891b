// The names of a render host's ports on the audio host's JACK server, as JACK's netmanager
// makes them (one client per netjack2 slave, named by the slave's `jackd -d net -n NAME`),
// and which channel carries what (docs/hosts.md).
#pragma once

#include <cstdint>
#include <string>

namespace sustain {

/// On a render host: capture 1 carries the audio host's requests; playback 1 the block,
/// playback 2 its label (hosts/block_label.h). `jackd -d net -C 1 -P 2`.
inline constexpr uint32_t kNetjackRequestChannel = 1;
inline constexpr uint32_t kNetjackAudioChannel = 1;
inline constexpr uint32_t kNetjackLabelChannel = 2;

/// On the audio host: what the render host plays arrives at NAME:from_slave_N; what is
/// written to NAME:to_slave_N reaches the render host's system:capture_N.
inline std::string netjackFromSlavePort(const std::string& name, uint32_t channel) {
    return name + ":from_slave_" + std::to_string(channel);
}
inline std::string netjackToSlavePort(const std::string& name, uint32_t channel) {
    return name + ":to_slave_" + std::to_string(channel);
}

}  // namespace sustain
