// The names of a render host's ports on the audio host's JACK server, as JACK's netmanager
// makes them (one client per netjack2 slave, named by the slave's `jackd -d net -n NAME`),
// and which channel carries what (docs/hosts.md).
#pragma once

#include <cstdint>
#include <string>

namespace sustain {

/// On a render host: capture 1 carries the audio host's requests; playback 1 the block,
/// playback 2 its label (hosts/block_label.h), then the blocks and labels of the
/// kBlockRepeats cycles before, again (3 and 4 the previous one's, 5 and 6 the one before).
/// JACK does not run a client for a cycle or two now and then (around graph changes: a
/// render host joining, a dead one's client dropped), and a block that arrives in such a
/// cycle is gone with it; a repeat that arrives a cycle or two later is still in time when
/// the audio host asks far enough ahead (docs/hosts.md). `jackd -d net -C 1 -P 6`.
inline constexpr uint32_t kNetjackRequestChannel = 1;
inline constexpr uint32_t kBlockRepeats = 2;
inline constexpr uint32_t kNetjackReturnChannels = 2 * (1 + kBlockRepeats);
/// The channel of the block (label: the next one) sent `age` cycles ago (0: this cycle's).
constexpr uint32_t netjackAudioChannel(uint32_t age) { return 1 + 2 * age; }
constexpr uint32_t netjackLabelChannel(uint32_t age) { return 2 + 2 * age; }

/// On the audio host: what the render host plays arrives at NAME:from_slave_N; what is
/// written to NAME:to_slave_N reaches the render host's system:capture_N.
inline std::string netjackFromSlavePort(const std::string& name, uint32_t channel) {
    return name + ":from_slave_" + std::to_string(channel);
}
inline std::string netjackToSlavePort(const std::string& name, uint32_t channel) {
    return name + ":to_slave_" + std::to_string(channel);
}

}  // namespace sustain
