// sustaind --role render: a render host (docs/hosts.md). Connects to the audio host's link,
// takes its config, state and commands, and renders the blocks it asks for over netjack2.
#pragma once

#include <cstdint>
#include <string>

namespace sustain {

struct RenderHostOptions {
    std::string audioHost;   // address of the audio host's link (--audio-host)
    uint16_t hostPort = 0;   // its port (--host-port)
    std::string netName;     // this host's netjack2 client name on the audio host (jackd -d net -n NAME)
    std::string device;      // --device: the local JACK server's (netjack2 slave's) device; default automatic
    std::string instance = "default";
};

/// Runs until SIGINT/SIGTERM; returns the process's exit code (supervisor/exit_status.h).
/// Thread: main, with SIGINT, SIGTERM and SIGPIPE blocked.
int runRenderHost(const RenderHostOptions& options);

}  // namespace sustain
