#include "supervisor/jack_graph.h"

#include <jack/jack.h>
#include <spdlog/spdlog.h>

namespace sustain {

JackGraph::~JackGraph() {
    if (client_ != nullptr) jack_client_close(client_);
}

int JackGraph::disconnectClient(const std::string& clientName, const std::string& ownName) {
    if (client_ == nullptr && !unavailable_) {
        jack_status_t status{};
        client_ = jack_client_open(ownName.c_str(), JackNoStartServer, &status);
        if (client_ == nullptr) {
            unavailable_ = true;  // no JACK server: the device is not shared, nothing to disconnect
            return 0;
        }
    }
    if (client_ == nullptr) return 0;
    const std::string pattern = "^" + clientName + ":";
    const char** ports = jack_get_ports(client_, pattern.c_str(), nullptr, 0);
    if (ports == nullptr) return 0;
    int removed = 0;
    for (const char** port = ports; *port != nullptr; ++port) {
        jack_port_t* handle = jack_port_by_name(client_, *port);
        if (handle == nullptr) continue;
        const char** connections = jack_port_get_all_connections(client_, handle);
        if (connections == nullptr) continue;
        for (const char** other = connections; *other != nullptr; ++other) {
            const bool output = (jack_port_flags(handle) & JackPortIsOutput) != 0;
            if (jack_disconnect(client_, output ? *port : *other, output ? *other : *port) == 0) ++removed;
        }
        jack_free(connections);
    }
    jack_free(ports);
    return removed;
}

}  // namespace sustain
