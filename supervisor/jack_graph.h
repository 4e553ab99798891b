// Removing a failed client's ports from the JACK graph, off sustaind's supervision loop.
//
// Needed because JACK keeps mixing a killed client's last buffer until it drops the client
// (8–17 ms), and mixes a stopped client's stale buffer for as long as it is stopped.
// Every JACK request waits for the server's answer, and a server that is busy with a client
// that does not answer (one that is stopped or dying) can keep it waiting for a long time:
// the requests run on a thread of their own, so that supervision never waits for JACK.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

// JACK's own declaration (jack/types.h), repeated so that this header does not pull in
// JACK's headers; the reserved-looking name is JACK's.
typedef struct _jack_client jack_client_t;  // NOLINT(bugprone-reserved-identifier)

namespace sustain {

class JackGraph {
public:
    /// `ownName`: the JACK client name sustaind uses for graph changes; `dropped` counts the
    /// requests dropped because kMaxPending already waited (the JACK server did not answer).
    JackGraph(std::string ownName, std::atomic<uint64_t>& dropped);
    JackGraph(const JackGraph&) = delete;
    JackGraph& operator=(const JackGraph&) = delete;
    ~JackGraph();

    /// Asks for every port of JACK client `clientName` to be disconnected, and returns at
    /// once. At most kMaxPending requests wait; more are dropped, counted and logged.
    /// Thread: main.  RT-safe: no.
    void disconnectClient(const std::string& clientName);

    static constexpr size_t kMaxPending = 16;

private:
    /// Shared with the graph thread, which keeps it alive should it still wait for the
    /// server when this object goes (it is then left to the process's exit).
    struct State {
        std::string ownName;
        jack_client_t* client = nullptr;  // the graph thread only
        bool unavailable = false;         // the graph thread only
        std::mutex mutex;
        std::condition_variable wake;      // a request, or stop
        std::condition_variable finished;  // the thread has left its loop
        std::deque<std::string> pending;   // guarded by mutex
        bool stopping = false;             // guarded by mutex
        bool done = false;                 // guarded by mutex
    };
    static void run(const std::shared_ptr<State>& state);
    /// Disconnects every port of `clientName`; returns how many connections were removed
    /// (0 when there is no JACK server: then there is nothing to remove).
    /// Opens sustaind's own JACK client on first use. Thread: the graph thread.
    static int disconnectNow(State& state, const std::string& clientName);

    std::shared_ptr<State> state_;
    std::atomic<uint64_t>& dropped_;  // in the segment, for the status
    std::thread thread_;
};

}  // namespace sustain
