// sustain-worker: renders the engine's sound in a PortAudio callback. Started by sustaind
// only (it passes the instance, the slot and one end of a socketpair); see docs/processes.md.
#include <pa_jack.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "engine/audio_device.h"
#include "engine/control_thread.h"
#include "engine/rt/audio_callback.h"
#include "engine/rt/synth.h"
#include "shm/clock.h"
#include "shm/realtime.h"
#include "shm/segment.h"

namespace sustain {
namespace {

struct WorkerOptions {
    std::string instance = "default";
    uint32_t slot = 0;
    int wakeFd = -1;
    int supervisorPid = 0;
    std::string logLevel = "info";
    bool listDevices = false;
    std::string device;
    double rate = 48000;
    unsigned frames = 64;
};

int exitWith(Segment* segment, uint32_t slot, WorkerExit reason) {
    if (segment != nullptr) segment->slots[slot].exitReason.store(static_cast<uint32_t>(reason), std::memory_order_release);
    return static_cast<int>(reason == WorkerExit::Clean ? 0 : static_cast<int>(reason));
}

const char* describe(RtEvent event) {
    switch (event) {
        case RtEvent::Xrun: return "xrun (output underflow), total";
        case RtEvent::Clipped: return "samples clipped at ±1 in one block:";
        case RtEvent::QueueBacklog: return "more commands than one block applies; carried over, taken:";
        case RtEvent::StaleEpoch: return "stale epoch; not rendering";
        case RtEvent::FadeDone: return "fade-out done";
    }
    return "event";
}

/// Formats what the callback reported, folding repeats ("xrun x37") to keep the log calm.
void drainRtLog(RtLogRing& log) {
    SpscRing<RtLogRecord> ring = log.ring();
    RtLogRecord record;
    static uint64_t lastNs[8] = {};
    static uint64_t folded[8] = {};
    while (ring.tryPop(record)) {
        const auto kind = static_cast<size_t>(record.event) & 7;
        if (lastNs[kind] != 0 && record.timeNs - lastNs[kind] < 1'000'000'000ull) {
            ++folded[kind];
            continue;
        }
        if (folded[kind] > 0)
            spdlog::warn("{} {} ({} similar suppressed)", describe(record.event), record.a, folded[kind]);
        else
            spdlog::warn("{} {}", describe(record.event), record.a);
        lastNs[kind] = record.timeNs;
        folded[kind] = 0;
    }
}

int listDevices(const WorkerOptions& options) {
    quietAlsaErrors();
    if (Pa_Initialize() != paNoError) {
        std::fprintf(stderr, "PortAudio failed to initialise\n");
        return 3;
    }
    printOutputDevices();
    const DeviceChoice choice = chooseOutputDevice(options.device);
    const std::string problem = probeOutputDevice(choice, options.rate, options.frames);
    Pa_Terminate();
    if (!problem.empty()) {
        std::printf("no usable output device: %s\n", problem.c_str());
        return 3;
    }
    std::printf("usable: %s\n", choice.name.c_str());
    return 0;
}

int runWorker(const WorkerOptions& options) {
    // Die with sustaind, whatever happens to it; if it is already gone, do not start.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (options.supervisorPid != 0 && getppid() != options.supervisorPid) {
        spdlog::error("sustaind (pid {}) is gone; not starting", options.supervisorPid);
        return 1;
    }
    for (int signal : {SIGINT, SIGTERM}) std::signal(signal, SIG_DFL);  // see sustaind's main.cpp
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGPIPE);
    // Blocked before any thread exists, so PortAudio's and JACK's threads inherit the mask.
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    const int signalFd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);

    MappedSegment mapping;
    std::string detail;
    const AttachError attached = attachSegment(options.instance, false, mapping, &detail);
    if (attached != AttachError::None) {
        spdlog::error("{}", sustain::describe(attached, options.instance, detail));
        return exitWith(nullptr, options.slot, WorkerExit::AttachFailed);
    }
    Segment& segment = mapping.get();
    if (options.slot >= kWorkerSlots) {
        spdlog::error("--slot {} does not exist (0..{})", options.slot, kWorkerSlots - 1);
        return exitWith(nullptr, options.slot, WorkerExit::AttachFailed);
    }
    const EngineConfig& config = segment.config;
    WorkerSlot& slot = segment.slots[options.slot];

    // Lock memory so that the audio thread never waits for a page fault; mlockall is not
    // inherited across exec, so each worker does it for itself.
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        spdlog::warn("cannot lock memory ({}); page faults may cause xruns (raise RLIMIT_MEMLOCK)", std::strerror(errno));

    auto queue = std::make_unique<CallbackQueue>(kCallbackQueueCapacity);
    auto log = std::make_unique<RtLogRing>();
    auto context = std::make_unique<CallbackContext>();
    context->segment = &segment;
    context->slot = options.slot;
    context->voices = config.voices;
    context->rampSamples = config.rampSamples;
    context->fadeSamples = config.fadeSamples;
    context->sampleRate = config.sampleRate;
    context->samplesPerNs = config.sampleRate / 1e9;
    context->queue = queue.get();
    context->log = log.get();
    context->startEpoch = slot.epoch.load(std::memory_order_acquire);
    initialRenderState(context->state, 0.0);
    CommandForwarder forwarder(segment, options.slot, *queue);
    forwarder.setSnapshot(loadStateTable(segment, context->state));

    const std::string clientName = "sustain-" + options.instance + "-w" + std::to_string(options.slot);
    PaJack_SetClientName(clientName.c_str());
    quietAlsaErrors();
    if (PaError error = Pa_Initialize(); error != paNoError) {
        spdlog::error("PortAudio failed to initialise: {}", Pa_GetErrorText(error));
        return exitWith(&segment, options.slot, WorkerExit::NoDevice);
    }
    const DeviceChoice device = chooseOutputDevice(config.device);
    if (device.index == paNoDevice) {
        spdlog::error("{}", device.error);
        Pa_Terminate();
        return exitWith(&segment, options.slot, WorkerExit::NoDevice);
    }
    context->channels = static_cast<uint32_t>(device.channels);
    PaStreamParameters output{};
    output.device = device.index;
    output.channelCount = device.channels;
    output.sampleFormat = paFloat32;
    output.suggestedLatency = Pa_GetDeviceInfo(device.index)->defaultLowOutputLatency;
    PaStream* stream = nullptr;
    PaError error = Pa_OpenStream(&stream, nullptr, &output, config.sampleRate, config.framesPerBuffer,
                                  paClipOff | paDitherOff, paAudioCallback, context.get());
    if (error == paNoError) error = Pa_StartStream(stream);
    if (error != paNoError) {
        spdlog::error("cannot play on {} at {} Hz, {} frames: {}", device.name, config.sampleRate,
                      config.framesPerBuffer, Pa_GetErrorText(error));
        if (stream != nullptr) Pa_CloseStream(stream);
        Pa_Terminate();
        return exitWith(&segment, options.slot, WorkerExit::StreamFailed);
    }
    std::snprintf(slot.deviceName, sizeof slot.deviceName, "%s", device.name.c_str());
    slot.startedNs.store(monotonicNs(), std::memory_order_release);

    // Active (or warm, for a standby) only once the callback really runs.
    const uint64_t firstDeadline = monotonicNs() + 5'000'000'000ull;
    while (context->blocks.load(std::memory_order_acquire) == 0 && monotonicNs() < firstDeadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (context->blocks.load(std::memory_order_acquire) == 0) {
        spdlog::error("the audio stream on {} started but its callback never ran", device.name);
        Pa_CloseStream(stream);
        Pa_Terminate();
        return exitWith(&segment, options.slot, WorkerExit::StreamFailed);
    }
    const bool active = slot.role.load(std::memory_order_acquire) == static_cast<uint32_t>(WorkerRole::Active);
    slot.state.store(static_cast<uint32_t>(active ? WorkerState::Active : WorkerState::Warm), std::memory_order_release);
    spdlog::info("rendering on {} ({} Hz, {} frames, {} voices, {} channels)", device.name, config.sampleRate,
                 config.framesPerBuffer, config.voices, device.channels);

    pthread_setname_np(pthread_self(), "sustain-control");
    requestLowRealtimePriority("control thread");
    pollfd fds[2] = {{options.wakeFd, POLLIN, 0}, {signalFd, POLLIN, 0}};
    bool stopping = false;
    uint64_t stopDeadline = 0;
    for (;;) {
        const bool pending = forwarder.drainOnce();
        if (active) segment.control.drainHeartbeatNs.store(monotonicNs(), std::memory_order_release);
        drainRtLog(*log);
        if (!stopping && segment.control.shutdownRequested.load(std::memory_order_acquire) != 0) {
            stopping = true;
            stopDeadline = monotonicNs() + 500'000'000ull;
        }
        if (stopping && (slot.fadedOut.load(std::memory_order_acquire) != 0 || monotonicNs() > stopDeadline)) break;
        if (!pending && !stopping && !forwarder.ring().prepareToSleep()) continue;
        const int ready = poll(fds, 2, pending || stopping ? 1 : 50);
        forwarder.ring().wokeUp();
        if (ready <= 0) continue;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char bytes[64];
            const ssize_t got = read(options.wakeFd, bytes, sizeof bytes);
            if (got == 0) {
                spdlog::warn("sustaind closed the wake socket; stopping");
                break;
            }
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo info{};
            if (read(signalFd, &info, sizeof info) == sizeof info && info.ssi_signo != SIGPIPE) {
                // The callback fades out, as on a shutdown of the whole engine.
                spdlog::info("signal {}: fading out and stopping", info.ssi_signo);
                context->stopRequested.store(1, std::memory_order_release);
                stopping = true;
                stopDeadline = monotonicNs() + 500'000'000ull;
            }
        }
    }
    Pa_StopStream(stream);
    Pa_CloseStream(stream);
    Pa_Terminate();
    spdlog::info("stopped after {} blocks", context->blocks.load());
    return exitWith(&segment, options.slot, WorkerExit::Clean);
}

}  // namespace
}  // namespace sustain

int main(int argc, char** argv) {
    sustain::WorkerOptions options;
    CLI::App app{"sustain-worker: renders audio for sustaind (started by sustaind only)"};
    app.add_option("--instance", options.instance, "engine instance");
    app.add_option("--slot", options.slot, "worker slot");
    app.add_option("--wake-fd", options.wakeFd, "socketpair end for wake bytes");
    app.add_option("--supervisor-pid", options.supervisorPid, "pid of sustaind");
    app.add_option("--log-level", options.logLevel, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.add_flag("--list-devices", options.listDevices, "list output devices and check the automatic choice plays");
    app.add_option("--device", options.device, "with --list-devices: the device to check");
    app.add_option("--rate", options.rate, "with --list-devices: sample rate to check");
    app.add_option("--frames", options.frames, "with --list-devices: period to check");
    CLI11_PARSE(app, argc, argv);
    if (options.listDevices) return sustain::listDevices(options);
    spdlog::set_default_logger(spdlog::stderr_color_mt("worker"));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [" + options.instance + "/worker " + std::to_string(options.slot) +
                        "] %v");
    spdlog::set_level(spdlog::level::from_str(options.logLevel));
    return sustain::runWorker(options);
}
