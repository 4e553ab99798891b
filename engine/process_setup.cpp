#include <algorithm>
#include "engine/process_setup.h"

#include "shm/process_log.h"

#include <pa_jack.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "shm/clock.h"
#include "shm/fault_point.h"

namespace sustain {

void addChildOptions(CLI::App& app, ChildOptions& options) {
    app.add_option("--instance", options.instance, "engine instance");
    app.add_option("--slot", options.slot, "slot");
    app.add_option("--wake-fd", options.wakeFd, "socketpair end (wake bytes; EOF = sustaind gone)");
    app.add_option("--supervisor-pid", options.supervisorPid, "pid of sustaind");
    app.add_option("--log-level", options.logLevel, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
}

void setupChildLogging(const char* role, const ChildOptions& options, bool withSlot) {
    setupProcessLogging(options.instance + "/" + role + (withSlot ? " " + std::to_string(options.slot) : ""),
                        options.logLevel);
}

int enterChildProcess(int supervisorPid) {
    installFaultPoints();  // test builds: tools/chaos arms points with a signal (shm/fault_point.h)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (supervisorPid != 0 && getppid() != supervisorPid) {
        spdlog::error("sustaind (pid {}) is gone; not starting", supervisorPid);
        return -1;
    }
    for (int signal : {SIGINT, SIGTERM}) std::signal(signal, SIG_DFL);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    return signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
}

void lockMemory() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // A sanitizer maps terabytes of shadow memory; locking it all would exhaust the machine.
    // Sanitizer builds are for finding bugs, not for playing to an audience.
    spdlog::info("sanitizer build: memory is not locked");
    return;
#endif
    // What is mapped now (code, libraries, the heap, the shared segment) is made resident and
    // locked at once. What is mapped later is locked page by page as it is first touched
    // (MCL_ONFAULT), not filled in whole: JACK gives each of its threads a 512 KB stack, of
    // which a few kilobytes are ever used, and filling them in cost each process 2 MB. The
    // audio thread touches its stack in its first callback (touchCallbackStack).
    if (mlockall(MCL_CURRENT) != 0 || mlockall(MCL_FUTURE | MCL_ONFAULT) != 0)
        spdlog::warn("cannot lock memory ({}); page faults may cause xruns. Allow it: LimitMEMLOCK=infinity in a "
                     "systemd unit, or a memlock limit for the user (/etc/security/limits.d/audio.conf; "
                     "docs/install.md)",
                     std::strerror(errno));
}

OpenedStream openAndStartStream(const EngineConfig& config, const std::string& clientName, PaStreamCallback* callback,
                                void* userData, int channelsWanted, uint32_t& channels, int inputChannels) {
    OpenedStream result;
    PaJack_SetClientName(clientName.c_str());
    quietAlsaErrors();
    if (PaError error = Pa_Initialize(); error != paNoError) {
        spdlog::error("PortAudio failed to initialise: {}", Pa_GetErrorText(error));
        result.failure = WorkerExit::NoDevice;
        return result;
    }
    result.device = chooseOutputDevice(config.device);
    if (result.device.index == paNoDevice) {
        spdlog::error("{}", result.device.error);
        Pa_Terminate();
        result.failure = WorkerExit::NoDevice;
        return result;
    }
    // chooseOutputDevice() offers at most stereo; a caller may want fewer, or (a render host's
    // netjack2 slave) more, up to what the device has.
    if (channelsWanted > 0)
        result.device.channels = std::min(channelsWanted, Pa_GetDeviceInfo(result.device.index)->maxOutputChannels);
    PaStreamParameters output{};
    output.device = result.device.index;
    output.channelCount = result.device.channels;
    output.sampleFormat = paFloat32;
    output.suggestedLatency = Pa_GetDeviceInfo(result.device.index)->defaultLowOutputLatency;
    PaStreamParameters input{};
    input.device = result.device.index;
    input.channelCount = inputChannels;
    input.sampleFormat = paFloat32;
    input.suggestedLatency = Pa_GetDeviceInfo(result.device.index)->defaultLowInputLatency;
    PaError error = Pa_OpenStream(&result.stream, inputChannels > 0 ? &input : nullptr, &output, config.sampleRate,
                                  config.framesPerBuffer, paClipOff | paDitherOff, callback, userData);
    // Before the start: from then on the callback reads it on its own thread.
    channels = static_cast<uint32_t>(result.device.channels);
    if (error == paNoError) error = Pa_StartStream(result.stream);
    if (error != paNoError) {
        spdlog::error("cannot play on {} at {} Hz, {} frames: {}", result.device.name, config.sampleRate,
                      config.framesPerBuffer, Pa_GetErrorText(error));
        if (result.stream != nullptr) Pa_CloseStream(result.stream);
        result.stream = nullptr;
        Pa_Terminate();
        result.failure = WorkerExit::StreamFailed;
        return result;
    }
    if (const PaStreamInfo* info = Pa_GetStreamInfo(result.stream); info != nullptr)
        result.outputLatencyFrames = static_cast<uint32_t>(std::lround(info->outputLatency * config.sampleRate));
    return result;
}

bool playsThroughJack(const OpenedStream& opened) {
    if (opened.stream == nullptr || opened.device.index == paNoDevice) return false;
    const PaDeviceInfo* device = Pa_GetDeviceInfo(opened.device.index);
    const PaHostApiInfo* api = device != nullptr ? Pa_GetHostApiInfo(device->hostApi) : nullptr;
    return api != nullptr && api->type == paJACK;
}

jack_client_t* openJackClock(const std::string& clientName) {
    jack_status_t status{};
    jack_client_t* client = jack_client_open(clientName.c_str(), JackNoStartServer, &status);
    if (client == nullptr)
        spdlog::warn("cannot read JACK's cycle clock (status 0x{:x}); timed bundles follow the callback's own timing",
                     static_cast<unsigned>(status));
    return client;
}

int64_t jackMinusMonotonicNs() {
    int64_t best = INT64_MAX;
    uint64_t bestSpan = UINT64_MAX;
    for (int i = 0; i < 5; ++i) {
        const uint64_t before = monotonicNs();
        const auto jackNs = static_cast<int64_t>(jack_get_time()) * 1000;
        const uint64_t after = monotonicNs();
        if (after - before < bestSpan) {
            bestSpan = after - before;
            best = jackNs - static_cast<int64_t>(before + (after - before) / 2);
        }
    }
    return best;
}

void publishPlayLatency(Segment& segment, uint32_t outputLatencyFrames, uint32_t extraFrames) {
    segment.clock.reportedLatencyFrames.store(outputLatencyFrames, std::memory_order_relaxed);
    segment.clock.playLatencyFrames.store(outputLatencyFrames + extraFrames, std::memory_order_release);
}

bool waitForFirstCallback(const std::atomic<uint64_t>& blocks) {
    const uint64_t deadline = monotonicNs() + 5'000'000'000ull;
    while (blocks.load(std::memory_order_acquire) == 0 && monotonicNs() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return blocks.load(std::memory_order_acquire) != 0;
}

void confineAudioThread(const AudioThread& audio, uint32_t slot, const char* what) {
    if (!audio.known.load(std::memory_order_acquire)) return;
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
    const auto wanted = static_cast<int>(slot % static_cast<uint32_t>(CPU_COUNT(&allowed)));
    int cpu = -1;
    for (int candidate = 0, seen = 0; candidate < CPU_SETSIZE && cpu < 0; ++candidate)
        if (CPU_ISSET(candidate, &allowed) && seen++ == wanted) cpu = candidate;
    cpu_set_t only;
    CPU_ZERO(&only);
    CPU_SET(cpu, &only);
    if (const int error = pthread_setaffinity_np(audio.thread, sizeof only, &only); error != 0)
        spdlog::warn("{}: cannot confine the audio thread to CPU {} ({}); it runs on any", what, cpu, std::strerror(error));
    else
        spdlog::debug("{}: audio thread on CPU {}", what, cpu);
}

bool streamLost(PaStream* stream) {
    if (stream == nullptr || Pa_IsStreamActive(stream) == 1) return false;
    spdlog::error("the audio stream stopped by itself: the device is gone (unplugged, or the JACK server stopped)");
    return true;
}

void exitDeviceLost(WorkerSlot& slot) {
    slot.exitReason.store(static_cast<uint32_t>(WorkerExit::DeviceLost), std::memory_order_release);
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    _exit(static_cast<int>(WorkerExit::DeviceLost));
}

void closeStream(PaStream* stream) {
    if (stream != nullptr) {
        Pa_StopStream(stream);
        Pa_CloseStream(stream);
    }
    Pa_Terminate();
}

bool jackMixesStaleBuffers() {
    // PipeWire's JACK library names itself in its version string ("... (using PipeWire x.y.z)").
    static const bool mixes = std::strstr(jack_get_version_string(), "PipeWire") == nullptr;
    return mixes;
}

void lookUpPeerPorts(StaleBuffer& stale, const WorkerSlot& peer, jack_client_t* jackClock, const std::string& client) {
    if (!jackMixesStaleBuffers()) return;  // no ports: the callback then never calls into JACK for them
    const int32_t pid = peer.pid.load(std::memory_order_acquire);
    const auto state = static_cast<WorkerState>(peer.state.load(std::memory_order_acquire));
    if (pid <= 0 || pid == stale.peerPortsPid.load(std::memory_order_relaxed) ||
        (state != WorkerState::Warm && state != WorkerState::Active))
        return;
    jack_port_t* ports[kAudioChannels] = {};
    for (uint32_t c = 0; c < kAudioChannels; ++c) {
        ports[c] = jack_port_by_name(jackClock, (client + ":out_" + std::to_string(c)).c_str());
        if (ports[c] == nullptr && c == 0) return;  // not registered yet (a mono stream has out_0 only)
    }
    stale.peerPortsPid.store(0, std::memory_order_release);
    for (uint32_t c = 0; c < kAudioChannels; ++c) stale.peerPorts[c].store(ports[c], std::memory_order_release);
    stale.peerPortsPid.store(pid, std::memory_order_release);
}

}  // namespace sustain
