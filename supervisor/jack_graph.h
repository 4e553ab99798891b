// Removing a failed client's ports from the JACK graph, from a normal thread.
//
// Needed because JACK keeps mixing a killed client's last buffer until it drops the client
// (8–17 ms), and mixes a stopped client's stale buffer for as long as it is stopped.
#pragma once

#include <string>

// JACK's own declaration (jack/types.h), repeated so that this header does not pull in
// JACK's headers; the reserved-looking name is JACK's.
typedef struct _jack_client jack_client_t;  // NOLINT(bugprone-reserved-identifier)

namespace sustain {

class JackGraph {
public:
    JackGraph() = default;
    JackGraph(const JackGraph&) = delete;
    JackGraph& operator=(const JackGraph&) = delete;
    ~JackGraph();

    /// Disconnects every port of JACK client `clientName`; returns how many connections
    /// were removed (0 when there is no JACK server: then there is nothing to remove).
    /// Opens sustaind's own JACK client on first use. Thread: main.  RT-safe: no.
    int disconnectClient(const std::string& clientName, const std::string& ownName);

private:
    jack_client_t* client_ = nullptr;
    bool unavailable_ = false;
};

}  // namespace sustain
