// sustain-record: records what a listener hears (by default the driver's own output,
// system:monitor_1, on a server started with -m) into a float WAV file, for exactly
// round(seconds * rate) frames. The process callback only copies into a preallocated ring;
// the main thread drains the ring to libsndfile. Every frame the recorder itself loses
// (ring full) is counted and makes the recording invalid: a test must never judge a
// hole the recorder made as if the engine had made it.
//
// JACK runs the recorder once per cycle only as long as the machine keeps up: now and then it
// skips the recorder for a cycle, or runs it so late that the driver has already begun the
// next cycle and refilled the monitor port (that period is then recorded twice, the one
// before it not at all), often with no xrun reported near. The recording is then not
// continuous at that frame, whatever was played. So every recorded cycle's JACK frame time
// is checked against the previous one's, and each place where they are not one period apart
// is reported (cycle_jumps): damage there is the recording's, not what the listener heard.
//
// Exit 0: complete, valid recording; 1: recording failed or invalid (overflow, no audio for
// 5 s, server gone, interrupted); 2: usage or setup error (flags, no server, no port, file).
#include <jack/jack.h>
#include <sndfile.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tools/audio/sample_ring.h"
#include "sustain_version.h"

namespace {

using Clock = std::chrono::steady_clock;
using sustain::audio::SampleRing;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitSetup = 2;
constexpr auto kWatchdog = std::chrono::seconds(5);  // no process cycle for this long: give up
constexpr auto kDrainPeriod = std::chrono::milliseconds(5);
constexpr double kRingSeconds = 2.0;  // slack for a slow disk; drained every 5 ms

volatile std::sig_atomic_t gStopSignal = 0;

void onSignal(int signal) { gStopSignal = signal; }

bool gVerbose = false;

// JACK prints to stderr on its own; unless --verbose, only our one-line messages appear.
void onJackMessage(const char* message) {
    if (gVerbose) std::fprintf(stderr, "jack: %s\n", message);
}

// Shared between the process callback and the main thread. Each atomic names its writer.
struct Recorder {
    explicit Recorder(std::size_t ringSamples) : ring(ringSamples) {}

    jack_client_t* client = nullptr;
    std::vector<jack_port_t*> ports;       // ours (inputs), in --port order
    std::vector<const float*> buffers;     // the callback's scratch, sized before activation
    SampleRing ring;
    std::uint64_t framesWanted = 0;

    std::atomic<bool> armed{false};                  // writer: main (once connected)
    std::atomic<bool> done{false};                   // writer: callback (last frame seen)
    std::atomic<bool> serverGone{false};             // writer: JACK shutdown callback
    std::atomic<std::uint64_t> cycles{0};            // writer: callback
    std::atomic<std::uint64_t> framesSeen{0};        // writer: callback (recorded + lost)
    std::atomic<std::uint64_t> framesLost{0};        // writer: callback (ring full)
    std::atomic<std::uint64_t> xruns{0};             // writer: JACK xrun callback, while recording
    // Where in the recording each xrun was reported (frames recorded so far), so that damage
    // the machine caused can be told from damage the engine caused. Writer: the xrun callback.
    // One per cycle of the recording (JACK reports at most one xrun a cycle; a loaded
    // machine has been seen to report 100 a second, which a fixed few thousand did not hold
    // for a 10-minute soak). Sized before activation.
    std::vector<std::atomic<std::uint64_t>> xrunAt;
    std::atomic<std::uint32_t> startFrame{0};        // writer: callback (first recorded cycle)
    // Where the recorded cycles are not consecutive JACK cycles: the frame in the recording
    // and JACK frames since the previous recorded cycle (not one period). At most one per
    // recorded cycle; sized before activation. The callback writes entry i, then publishes
    // jumps = i + 1 (release); the main thread reads entries below jumps (acquire).
    std::vector<std::uint64_t> jumpAt;
    std::vector<std::int64_t> jumpFrames;
    std::atomic<std::uint64_t> jumps{0};
    jack_nframes_t lastCycleFrame = 0;               // callback only: the previous recorded cycle's
    // --cycle-times: when each recorded cycle began on JACK's clock (its DLL estimate of the
    // driver's wake-up, microseconds), and at which frame of the recording. Sized before
    // activation; the callback writes entry i before it publishes cyclesRecorded = i + 1.
    std::vector<std::uint64_t> cycleFrame;
    std::vector<std::uint64_t> cycleUsecs;
    std::vector<std::uint64_t> cycleWakeUsecs;  // when this callback began, on JACK's clock
    std::atomic<std::uint64_t> cyclesRecorded{0};
};

// RT-safe: atomics, jack_port_get_buffer and a ring write; no locks, allocation or logging.
int onProcess(jack_nframes_t nframes, void* arg) noexcept {
    auto& r = *static_cast<Recorder*>(arg);
    r.cycles.fetch_add(1, std::memory_order_relaxed);
    if (!r.armed.load(std::memory_order_acquire) || r.done.load(std::memory_order_relaxed)) return 0;
    const std::uint64_t seen = r.framesSeen.load(std::memory_order_relaxed);
    const std::uint64_t left = r.framesWanted - seen;
    const std::size_t take = left < nframes ? static_cast<std::size_t>(left) : nframes;
    for (std::size_t c = 0; c < r.ports.size(); ++c) {
        r.buffers[c] = static_cast<const float*>(jack_port_get_buffer(r.ports[c], nframes));
    }
    // One reading of JACK's timer serves both the cycle times and the continuity check.
    jack_nframes_t currentFrames = 0;
    jack_time_t currentUsecs = 0, nextUsecs = 0;
    float periodUsecs = 0.0f;
    const bool timed = jack_get_cycle_times(r.client, &currentFrames, &currentUsecs, &nextUsecs, &periodUsecs) == 0;
    if (!timed) currentFrames = jack_last_frame_time(r.client);
    if (seen == 0) {
        r.startFrame.store(currentFrames, std::memory_order_relaxed);
    } else if (currentFrames - r.lastCycleFrame != nframes) {  // unsigned: wraps correctly
        const std::uint64_t jump = r.jumps.load(std::memory_order_relaxed);
        if (jump < r.jumpAt.size()) {
            r.jumpAt[jump] = seen;
            r.jumpFrames[jump] = static_cast<std::int32_t>(currentFrames - r.lastCycleFrame);
            r.jumps.store(jump + 1, std::memory_order_release);
        }
    }
    r.lastCycleFrame = currentFrames;
    const std::uint64_t cycle = r.cyclesRecorded.load(std::memory_order_relaxed);
    if (timed && cycle < r.cycleFrame.size()) {
        r.cycleFrame[cycle] = seen;
        r.cycleUsecs[cycle] = currentUsecs;
        r.cycleWakeUsecs[cycle] = jack_get_time();
        r.cyclesRecorded.store(cycle + 1, std::memory_order_release);
    }
    if (!r.ring.tryWriteInterleaved(r.buffers.data(), r.buffers.size(), take)) {
        r.framesLost.fetch_add(take, std::memory_order_relaxed);
    }
    r.framesSeen.store(seen + take, std::memory_order_release);
    if (seen + take >= r.framesWanted) r.done.store(true, std::memory_order_release);
    return 0;
}

/// Positions (frames into the recording) at which JACK reported an xrun.
nlohmann::json xrunFrames(const Recorder& r) {
    auto positions = nlohmann::json::array();
    const std::uint64_t count = std::min<std::uint64_t>(r.xruns.load(), r.xrunAt.size());
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t at = r.xrunAt[i].load(std::memory_order_relaxed);
        if (at != 0) positions.push_back(at - 1);
    }
    return positions;
}

/// [frame in the recording, JACK frames since the previous recorded cycle] wherever the
/// recorded cycles were not consecutive JACK cycles.
nlohmann::json cycleJumps(const Recorder& r) {
    auto jumps = nlohmann::json::array();
    const std::uint64_t count = r.jumps.load(std::memory_order_acquire);
    for (std::uint64_t i = 0; i < count; ++i) jumps.push_back({r.jumpAt[i], r.jumpFrames[i]});
    return jumps;
}

// Thread: JACK's notification thread. Counts only xruns while recording.
int onXrun(void* arg) noexcept {
    auto& r = *static_cast<Recorder*>(arg);
    if (r.armed.load(std::memory_order_acquire) && !r.done.load(std::memory_order_acquire)) {
        const std::uint64_t index = r.xruns.fetch_add(1, std::memory_order_relaxed);
        if (index < r.xrunAt.size())
            r.xrunAt[index].store(r.framesSeen.load(std::memory_order_acquire) + 1, std::memory_order_relaxed);
    }
    return 0;
}

void onShutdown(void* arg) noexcept {
    static_cast<Recorder*>(arg)->serverGone.store(true, std::memory_order_release);
}

// Written atomically (temp file, then rename) so a test polling for it never reads half.
bool writeReadyFile(const std::string& path, const nlohmann::json& content) {
    const std::string temp = path + ".tmp." + std::to_string(::getpid());
    std::FILE* f = std::fopen(temp.c_str(), "w");
    if (f == nullptr) return false;
    const std::string text = content.dump() + "\n";
    const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !written) return false;
    return std::rename(temp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Records JACK ports (by default the driver's output, system:monitor_1) into a float "
                 "WAV file for exactly round(seconds*rate) frames.\n"
                 "Exit 0: valid recording; 1: failed or invalid (recorder overflow, no audio for 5 s, "
                 "server gone); 2: usage or setup error."};
    app.set_version_flag("--version", std::string("sustain-record ") + SUSTAIN_VERSION);
    const char* envServer = std::getenv("JACK_DEFAULT_SERVER");
    std::string server = envServer != nullptr && *envServer != '\0' ? envServer : "default";
    std::vector<std::string> sources;
    double seconds = 0.0;
    std::string outPath;
    std::string clientName = "sustain-record";
    std::string readyFile;
    std::string cycleTimesPath;
    bool json = false;
    std::size_t ringFramesFlag = 0;

    app.add_option("--server", server, "JACK server name (default: $JACK_DEFAULT_SERVER, else default)")
        ->capture_default_str();
    app.add_option("--port", sources, "source port, one channel each, repeatable (default system:monitor_1)")
        ->take_all();
    app.add_option("--seconds", seconds, "duration in seconds")->required();
    app.add_option("--out", outPath, "output WAV file (32-bit float)")->required();
    app.add_option("--client-name", clientName, "JACK client name")->capture_default_str();
    app.add_option("--cycle-times", cycleTimesPath,
                   "write when each recorded cycle began (JSON: frame in the recording, JACK's cycle start and the "
                   "recorder's own wake-up in JACK time in us, and JACK time minus CLOCK_MONOTONIC) to this file");
    app.add_option("--ready-file", readyFile,
                   "written (atomically) once the ports are connected and the first block is recorded");
    app.add_flag("--json", json, "print a JSON summary on stdout");
    app.add_option("--ring-frames", ringFramesFlag,
                   "ring capacity in frames (default: 2 s); a tiny ring lets a test see overflows flagged");
    app.add_flag("--verbose", gVerbose, "pass JACK's own messages through to stderr");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? kExitOk : kExitSetup;
    }
    if (sources.empty()) sources.emplace_back("system:monitor_1");
    if (!(seconds > 0.0) || !std::isfinite(seconds)) {
        std::fprintf(stderr, "sustain-record: --seconds %g: expected a positive duration\n", seconds);
        return kExitSetup;
    }

    jack_set_error_function(onJackMessage);
    jack_set_info_function(onJackMessage);
    const auto openedAt = Clock::now();
    // Declared before the client so it outlives it: the callbacks use it until the close.
    std::unique_ptr<Recorder> recorder;
    jack_status_t status{};
    jack_client_t* client = jack_client_open(clientName.c_str(),
                                             static_cast<jack_options_t>(JackNoStartServer | JackServerName),
                                             &status, server.c_str());
    if (client == nullptr) {
        std::fprintf(stderr,
                     "sustain-record: cannot connect to JACK server \"%s\" (status 0x%x); is it running? "
                     "(start one: jackd -n %s -d dummy -r 48000 -p 64 -m)\n",
                     server.c_str(), static_cast<unsigned>(status), server.c_str());
        return kExitSetup;
    }
    // From here on every exit path closes the client (the server otherwise keeps a zombie).
    struct ClientCloser {
        jack_client_t* c;
        ~ClientCloser() { jack_client_close(c); }
    } closer{client};

    for (const std::string& name : sources) {
        jack_port_t* source = jack_port_by_name(client, name.c_str());
        if (source == nullptr) {
            std::fprintf(stderr, "sustain-record: port \"%s\" does not exist on JACK server \"%s\" (see jack_lsp%s)\n",
                         name.c_str(), server.c_str(),
                         name.rfind("system:monitor", 0) == 0 ? "; monitor ports need jackd ... -d dummy -m" : "");
            return kExitSetup;
        }
        if ((jack_port_flags(source) & JackPortIsOutput) == 0) {
            std::fprintf(stderr, "sustain-record: port \"%s\" is an input; expected an output port to record from\n",
                         name.c_str());
            return kExitSetup;
        }
    }

    const jack_nframes_t sampleRate = jack_get_sample_rate(client);
    const double rate = sampleRate;
    const auto framesWanted = static_cast<std::uint64_t>(std::llround(seconds * rate));
    if (framesWanted == 0) {
        std::fprintf(stderr, "sustain-record: --seconds %g is less than one frame at %.0f Hz\n", seconds, rate);
        return kExitSetup;
    }
    const std::size_t channels = sources.size();
    const std::size_t ringFrames =
        ringFramesFlag > 0 ? ringFramesFlag
                           : std::max<std::size_t>(static_cast<std::size_t>(rate * kRingSeconds),
                                                   64 * static_cast<std::size_t>(jack_get_buffer_size(client)));
    recorder = std::make_unique<Recorder>(ringFrames * channels);
    Recorder& r = *recorder;
    r.client = client;
    r.framesWanted = framesWanted;
    r.buffers.assign(channels, nullptr);
    // Best effort: a page-out of the ring would stall the process thread. Without the
    // privilege (RLIMIT_MEMLOCK) the pages are still touched, which is enough for a test.
    (void)::mlock(r.ring.data(), r.ring.capacity() * sizeof(float));

    for (std::size_t c = 0; c < channels; ++c) {
        const std::string portName = "in_" + std::to_string(c + 1);
        jack_port_t* port = jack_port_register(client, portName.c_str(), JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput, 0);
        if (port == nullptr) {
            std::fprintf(stderr, "sustain-record: cannot register port %s:%s\n", jack_get_client_name(client),
                         portName.c_str());
            return kExitSetup;
        }
        r.ports.push_back(port);
    }

    SF_INFO info{};
    info.samplerate = static_cast<int>(rate);
    info.channels = static_cast<int>(channels);
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE* file = sf_open(outPath.c_str(), SFM_WRITE, &info);
    if (file == nullptr) {
        std::fprintf(stderr, "sustain-record: cannot write \"%s\": %s\n", outPath.c_str(), sf_strerror(nullptr));
        return kExitSetup;
    }
    struct FileCloser {
        SNDFILE* f;
        void close() {
            if (f != nullptr) sf_close(f);
            f = nullptr;
        }
        ~FileCloser() { close(); }
    } fileCloser{file};

    const std::uint64_t cycles = framesWanted / jack_get_buffer_size(client) + 16;
    r.xrunAt = std::vector<std::atomic<std::uint64_t>>(cycles);
    r.jumpAt.assign(cycles, 0);
    r.jumpFrames.assign(cycles, 0);
    if (!cycleTimesPath.empty()) {
        r.cycleFrame.assign(cycles, 0);
        r.cycleUsecs.assign(cycles, 0);
        r.cycleWakeUsecs.assign(cycles, 0);
    }
    jack_set_process_callback(client, onProcess, &r);
    jack_set_xrun_callback(client, onXrun, &r);
    jack_on_shutdown(client, onShutdown, &r);
    struct sigaction action {};
    action.sa_handler = onSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);

    if (jack_activate(client) != 0) {
        std::fprintf(stderr, "sustain-record: cannot activate the JACK client on server \"%s\"\n", server.c_str());
        return kExitSetup;
    }
    for (std::size_t c = 0; c < channels; ++c) {
        const int rc = jack_connect(client, sources[c].c_str(), jack_port_name(r.ports[c]));
        if (rc != 0) {
            std::fprintf(stderr, "sustain-record: cannot connect %s to %s (error %d)\n", sources[c].c_str(),
                         jack_port_name(r.ports[c]), rc);
            jack_deactivate(client);
            return kExitSetup;
        }
    }
    // jack_connect returns once the server has the new graph; the cycle running at that
    // moment may still use the old one. Two full cycles later the connection carries audio.
    const std::uint64_t cyclesAtConnect = r.cycles.load(std::memory_order_relaxed);
    const auto connectedAt = Clock::now();
    while (r.cycles.load(std::memory_order_relaxed) < cyclesAtConnect + 3) {
        if (Clock::now() - connectedAt > kWatchdog || r.serverGone.load() || gStopSignal != 0) {
            if (gStopSignal != 0) {
                std::fprintf(stderr, "sustain-record: stopped by signal %d before recording began\n",
                             static_cast<int>(gStopSignal));
            } else if (r.serverGone.load()) {
                std::fprintf(stderr, "sustain-record: JACK server \"%s\" shut down before recording began\n",
                             server.c_str());
            } else {
                std::fprintf(stderr, "sustain-record: JACK server \"%s\" ran no process cycle for %lld s after "
                             "connecting (server stalled?)\n",
                             server.c_str(), static_cast<long long>(kWatchdog.count()));
            }
            fileCloser.close();
            std::fflush(nullptr);
            std::_Exit(kExitFailed);  // the server is stuck: closing the client could block too
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    r.armed.store(true, std::memory_order_release);

    // Drain loop: the only thread that touches the file.
    std::vector<float> chunk(r.ring.capacity());
    std::uint64_t framesWritten = 0;
    bool readyWritten = readyFile.empty();
    bool writeFailed = false;
    std::string failure;
    bool serverUnusable = false;  // stalled or gone: any further JACK call may block
    std::uint64_t lastCycles = r.cycles.load(std::memory_order_relaxed);
    auto lastProgress = Clock::now();
    double readyAfterMs = -1.0;
    while (true) {
        const bool finished = r.done.load(std::memory_order_acquire);
        std::size_t got;
        while ((got = r.ring.read(chunk.data(), chunk.size())) > 0) {
            const auto frames = static_cast<sf_count_t>(got / channels);
            if (sf_writef_float(file, chunk.data(), frames) != frames) writeFailed = true;
            framesWritten += static_cast<std::uint64_t>(frames);
        }
        if (writeFailed) {
            failure = "write to \"" + outPath + "\" failed: " + sf_strerror(file);
            break;
        }
        if (!readyWritten && r.framesSeen.load(std::memory_order_acquire) > 0) {
            nlohmann::json ready = {{"pid", ::getpid()},
                                    {"sample_rate", sampleRate},
                                    {"channels", channels},
                                    {"ports", sources},
                                    {"start_frame", r.startFrame.load(std::memory_order_relaxed)},
                                    {"frames_wanted", framesWanted}};
            if (!writeReadyFile(readyFile, ready)) {
                failure = "cannot write --ready-file \"" + readyFile + "\"";
                break;
            }
            readyWritten = true;
        }
        if (readyAfterMs < 0.0 && r.framesSeen.load(std::memory_order_relaxed) > 0) {
            readyAfterMs = std::chrono::duration<double, std::milli>(Clock::now() - openedAt).count();
        }
        if (finished) break;
        if (r.serverGone.load(std::memory_order_acquire)) {
            failure = "JACK server \"" + server + "\" shut down";
            serverUnusable = true;
            break;
        }
        if (gStopSignal != 0) {
            failure = std::string("stopped by signal ") + std::to_string(gStopSignal);
            break;
        }
        const std::uint64_t cycles = r.cycles.load(std::memory_order_relaxed);
        const auto now = Clock::now();
        if (cycles != lastCycles) {
            lastCycles = cycles;
            lastProgress = now;
        } else if (now - lastProgress > kWatchdog) {
            failure = "no audio from JACK server \"" + server + "\" for " + std::to_string(kWatchdog.count()) +
                      " s (server stalled?)";
            serverUnusable = true;
            break;
        }
        std::this_thread::sleep_for(kDrainPeriod);
    }
    if (!cycleTimesPath.empty() && !serverUnusable) {
        // JACK's clock against CLOCK_MONOTONIC (the engine's), so a reader can put the two
        // side by side; the smallest of a few readings is the one least disturbed.
        std::int64_t offsetUs = INT64_MAX;
        for (int i = 0; i < 5; ++i) {
            timespec ts{};
            clock_gettime(CLOCK_MONOTONIC, &ts);
            const auto before = static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
            const auto jack = static_cast<std::int64_t>(jack_get_time());
            offsetUs = std::min(offsetUs, jack - before);
        }
        const std::uint64_t count = r.cyclesRecorded.load(std::memory_order_acquire);
        nlohmann::json times = {{"jack_minus_monotonic_us", offsetUs},
                                {"sample_rate", sampleRate},
                                {"frame", std::vector<std::uint64_t>(r.cycleFrame.begin(), r.cycleFrame.begin() + static_cast<std::ptrdiff_t>(count))},
                                {"usecs", std::vector<std::uint64_t>(r.cycleUsecs.begin(), r.cycleUsecs.begin() + static_cast<std::ptrdiff_t>(count))},
                                {"wake_usecs", std::vector<std::uint64_t>(r.cycleWakeUsecs.begin(), r.cycleWakeUsecs.begin() + static_cast<std::ptrdiff_t>(count))}};
        if (!writeReadyFile(cycleTimesPath, times) && failure.empty())
            failure = "cannot write --cycle-times \"" + cycleTimesPath + "\"";
    }
    if (!serverUnusable) jack_deactivate(client);
    fileCloser.close();  // finishes the WAV header, even for a failed recording

    const std::uint64_t lost = r.framesLost.load();
    const std::uint64_t xruns = r.xruns.load();
    if (failure.empty() && lost > 0) failure = "recorder overflow: lost " + std::to_string(lost) + " frames";
    if (failure.empty() && framesWritten != framesWanted) {
        failure = "incomplete: " + std::to_string(framesWritten) + " of " + std::to_string(framesWanted) + " frames";
    }
    const bool valid = failure.empty();

    std::string portList;
    for (const std::string& s : sources) portList += (portList.empty() ? "" : ",") + s;
    std::fprintf(stderr,
                 "sustain-record: %llu frames (%.3f s, %zu ch, %.0f Hz) from %s to %s; xruns %llu, recorder "
                 "overflows %llu, cycle jumps %llu; recording began %.1f ms after start: %s%s\n",
                 static_cast<unsigned long long>(framesWritten), static_cast<double>(framesWritten) / rate, channels,
                 rate, portList.c_str(), outPath.c_str(), static_cast<unsigned long long>(xruns),
                 static_cast<unsigned long long>(lost), static_cast<unsigned long long>(r.jumps.load()), readyAfterMs, valid ? "valid" : "INVALID: ",
                 failure.c_str());
    if (json) {
        const nlohmann::json out = {{"frames", framesWritten},
                                    {"frames_wanted", framesWanted},
                                    {"xrun_frames", xrunFrames(r)},
                                    {"sample_rate", sampleRate},
                                    {"channels", channels},
                                    {"ports", sources},
                                    {"xruns", xruns},
                                    {"xrun_positions_lost", xruns - std::min<std::uint64_t>(xruns, r.xrunAt.size())},
                                    {"cycle_jumps", cycleJumps(r)},
                                    {"recorder_overflows", lost},
                                    {"file", outPath},
                                    {"valid", valid},
                                    {"error", valid ? nlohmann::json(nullptr) : nlohmann::json(failure)}};
        std::printf("%s\n", out.dump().c_str());
    }
    if (serverUnusable) {
        // jack_client_close (and libjack's exit handlers) wait for a server that is stopped
        // or gone, possibly forever: leave without them; the server drops a dead client.
        std::fflush(nullptr);
        std::_Exit(kExitFailed);
    }
    return valid ? kExitOk : kExitFailed;
}
