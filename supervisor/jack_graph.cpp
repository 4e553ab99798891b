#include "supervisor/jack_graph.h"

#include <chrono>
#include <utility>

#include <jack/jack.h>
#include <spdlog/spdlog.h>

#include "shm/clock.h"

namespace sustain {

namespace {
/// A graph change slower than this is worth a line in the log (the server was busy).
constexpr uint64_t kSlowRequestNs = 100'000'000;
/// How long shutdown waits for a request the server does not answer.
constexpr auto kStopWait = std::chrono::seconds(2);
}  // namespace

JackGraph::JackGraph(std::string ownName, std::atomic<uint64_t>& dropped)
    : state_(std::make_shared<State>()), dropped_(dropped) {
    state_->ownName = std::move(ownName);
    thread_ = std::thread([state = state_] { run(state); });
}

JackGraph::~JackGraph() {
    std::unique_lock lock(state_->mutex);
    state_->stopping = true;
    state_->wake.notify_one();
    if (state_->finished.wait_for(lock, kStopWait, [this] { return state_->done; })) {
        lock.unlock();
        thread_.join();
        if (state_->client != nullptr) jack_client_close(state_->client);
        return;
    }
    // Stuck in a request the JACK server never answers: leave it to the process's exit.
    spdlog::warn("the JACK server has not answered a graph change for {} s; not waiting for it",
                 std::chrono::duration_cast<std::chrono::seconds>(kStopWait).count());
    thread_.detach();
}

void JackGraph::disconnectClient(const std::string& clientName) {
    std::lock_guard lock(state_->mutex);
    if (state_->pending.size() >= kMaxPending) {
        const uint64_t dropped = dropped_.fetch_add(1, std::memory_order_relaxed) + 1;
        spdlog::error("the JACK server has not answered {} graph changes; not removing {}'s ports (dropped {} so far)",
                      state_->pending.size(), clientName, dropped);
        return;
    }
    state_->pending.push_back(clientName);
    state_->wake.notify_one();
}

void JackGraph::run(const std::shared_ptr<State>& state) {
    std::unique_lock lock(state->mutex);
    while (true) {
        state->wake.wait(lock, [&state] { return state->stopping || !state->pending.empty(); });
        if (state->stopping) break;
        const std::string clientName = std::move(state->pending.front());
        state->pending.pop_front();
        lock.unlock();
        const uint64_t startNs = monotonicNs();
        const int removed = disconnectNow(*state, clientName);
        const uint64_t tookNs = monotonicNs() - startNs;
        lock.lock();
        // Given up on at shutdown: the process may be tearing down its globals (the
        // logger among them), so touch nothing but the shared state.
        if (state->stopping) break;
        if (tookNs > kSlowRequestNs)
            spdlog::warn("removing {}'s ports ({} connections) took the JACK server {} ms", clientName, removed,
                         tookNs / 1'000'000);
    }
    state->done = true;
    state->finished.notify_all();
}

int JackGraph::disconnectNow(State& state, const std::string& clientName) {
    if (state.client == nullptr && !state.unavailable) {
        jack_status_t status{};
        state.client = jack_client_open(state.ownName.c_str(), JackNoStartServer, &status);
        if (state.client == nullptr) {
            state.unavailable = true;  // no JACK server: the device is not shared, nothing to disconnect
            return 0;
        }
    }
    jack_client_t* client = state.client;
    if (client == nullptr) return 0;
    const std::string pattern = "^" + clientName + ":";
    const char** ports = jack_get_ports(client, pattern.c_str(), nullptr, 0);
    if (ports == nullptr) return 0;
    int removed = 0;
    for (const char** port = ports; *port != nullptr; ++port) {
        jack_port_t* handle = jack_port_by_name(client, *port);
        if (handle == nullptr) continue;
        const char** connections = jack_port_get_all_connections(client, handle);
        if (connections == nullptr) continue;
        for (const char** other = connections; *other != nullptr; ++other) {
            const bool output = (jack_port_flags(handle) & JackPortIsOutput) != 0;
            if (jack_disconnect(client, output ? *port : *other, output ? *other : *port) == 0) ++removed;
        }
        jack_free(connections);
    }
    jack_free(ports);
    return removed;
}

}  // namespace sustain
