// sustaind --role render: a render host (docs/hosts.md). Connects to the audio host's link,
// takes its config, state and commands, runs its own netjack2 slave (jackd -d net) and
// renders the blocks the audio host asks for through it. netjack2 does not recover from a
// slave that stopped for a moment (the audio host's netmanager drops it, and the slave
// never hears from it again), so the render host starts its slave anew whenever requests
// stop coming while the link is up.
#pragma once

#include <cstdint>
#include <string>

namespace sustain {

struct RenderHostOptions {
    std::string audioHost;   // address of the audio host's link (--audio-host)
    uint16_t hostPort = 0;   // its port (--host-port)
    std::string netName;     // this host's netjack2 client name on the audio host (jackd -d net -n NAME)
    std::string instance = "default";
    uint16_t netPort = 19000;  // the audio host's netmanager UDP port (--net-port)
    uint32_t netLatency = 2;   // netjack2's network latency in periods (--net-latency)
};

/// Runs until SIGINT/SIGTERM; returns the process's exit code (supervisor/exit_status.h).
/// Thread: main, with SIGINT, SIGTERM and SIGPIPE blocked.
int runRenderHost(const RenderHostOptions& options);

}  // namespace sustain
