// sustain-host-output: the audio host's output stage (sustaind --role audio). Asks every
// render host for block n + D in cycle n and plays block n from whichever host delivered it
// in step. Started by sustaind only. See docs/hosts.md.
#include <jack/jack.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "engine/process_setup.h"
#include "hosts/host_output_callback.h"
#include "hosts/netjack_ports.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "sustain_version.h"

namespace sustain {
namespace {

jack_client_t* openClient(const std::string& name) {
    jack_status_t status{};
    jack_client_t* client = jack_client_open(name.c_str(), JackNoStartServer, &status);
    if (client == nullptr)
        spdlog::error("cannot open the JACK client {} (status 0x{:x}): the audio host's JACK server must run "
                      "(with `jack_load netmanager` for the render hosts; docs/hosts.md)", name, static_cast<unsigned>(status));
    return client;
}

/// Connects `from` to `to` unless they are; true when connected afterwards.
bool ensureConnected(jack_client_t* client, const std::string& from, const std::string& to) {
    const int result = jack_connect(client, from.c_str(), to.c_str());
    return result == 0 || result == EEXIST;
}

/// Keeps each render host's netjack2 ports wired to ours. Its client appears when its slave
/// connects, and the netmanager makes it anew each time the slave comes back, under the
/// same name or, while the old one is still being removed, as NAME-01, NAME-02...: the
/// newest of them is the one that carries the host now.
class HostWiring {
public:
    HostWiring(HostOutputContext& context, std::string requestPort)
        : context_(context), requestPort_(std::move(requestPort)) {}

    void refresh() {
        for (uint32_t host = 0; host < kRenderHostSlots; ++host) refreshHost(host);
    }

private:
    /// The client name of the newest netmanager client of render host `name`, or "".
    std::string newestClient(const std::string& name) const {
        std::string escaped;  // a valid name (validNetName) has no regex character but '.'
        for (char c : name) escaped += c == '.' ? std::string("\\.") : std::string(1, c);
        const std::string pattern = "^" + escaped + "(-[0-9]+)?:from_slave_1$";
        const char** ports = jack_get_ports(context_.playClient, pattern.c_str(), JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput);
        std::string newest;
        for (size_t i = 0; ports != nullptr && ports[i] != nullptr; ++i) {
            const std::string port = ports[i];
            const std::string client = port.substr(0, port.find(':'));
            // NAME < NAME-01 < NAME-02: longer, then later in order.
            if (client.size() > newest.size() || (client.size() == newest.size() && client > newest)) newest = client;
        }
        if (ports != nullptr) jack_free(ports);
        return newest;
    }

    void refreshHost(uint32_t host) {
        RenderHostSlot& slot = context_.segment->hosts.hosts[host];
        HostReceiver& receiver = context_.receivers[host];
        const std::string name(slot.netName, strnlen(slot.netName, sizeof slot.netName));
        const std::string client = name.empty() ? "" : newestClient(name);
        if (client.empty() || slot.connected.load(std::memory_order_acquire) == 0) {
            slot.connectedPorts.store(0, std::memory_order_relaxed);
            return;
        }
        bool connected = wiredClient_[host] == client;
        for (uint32_t age = 0; age <= kBlockRepeats && connected; ++age)
            connected = jack_port_connected_to(receiver.audio[age], netjackFromSlavePort(client, netjackAudioChannel(age)).c_str()) != 0 &&
                        jack_port_connected_to(receiver.label[age], netjackFromSlavePort(client, netjackLabelChannel(age)).c_str()) != 0;
        if (connected) {
            slot.connectedPorts.store(1, std::memory_order_relaxed);
            return;
        }
        // Another client for this row: start from no wires.
        for (uint32_t age = 0; age <= kBlockRepeats; ++age) {
            jack_port_disconnect(receiver.client, receiver.audio[age]);
            jack_port_disconnect(receiver.client, receiver.label[age]);
        }
        bool wired = ensureConnected(context_.requestClient, requestPort_, netjackToSlavePort(client, kNetjackRequestChannel));
        for (uint32_t age = 0; age <= kBlockRepeats && wired; ++age)
            wired = ensureConnected(receiver.client, netjackFromSlavePort(client, netjackAudioChannel(age)),
                                    jack_port_name(receiver.audio[age])) &&
                    ensureConnected(receiver.client, netjackFromSlavePort(client, netjackLabelChannel(age)),
                                    jack_port_name(receiver.label[age]));
        if (wired) spdlog::info("render host {} (row {}) wired through the netmanager's client {}", name, host, client);
        wiredClient_[host] = wired ? client : "";
        slot.connectedPorts.store(wired ? 1 : 0, std::memory_order_relaxed);
    }

    HostOutputContext& context_;
    std::string requestPort_;
    std::string wiredClient_[kRenderHostSlots];
};

int runHostOutput(const ChildOptions& options) {
    const int signalFd = enterChildProcess(options.supervisorPid);
    if (signalFd < 0) return 1;
    MappedSegment mapping;
    std::string detail;
    const AttachError attached = attachSegment(options.instance, false, mapping, &detail);
    if (attached != AttachError::None) {
        spdlog::error("{}", describe(attached, options.instance, detail));
        return static_cast<int>(WorkerExit::AttachFailed);
    }
    Segment& segment = mapping.get();
    WorkerSlot& self = segment.outputs[0];
    lockMemory();

    auto context = std::make_unique<HostOutputContext>();
    context->segment = &segment;
    context->frames = segment.config.framesPerBuffer;
    context->fadeSamples = std::max<uint32_t>(1, segment.config.fadeSamples);
    const std::string requestName = "sustain-" + options.instance + "-request";
    const std::string playName = "sustain-" + options.instance + "-hosts";
    context->requestClient = openClient(requestName);
    context->playClient = context->requestClient != nullptr ? openClient(playName) : nullptr;
    for (uint32_t host = 0; host < kRenderHostSlots && context->playClient != nullptr; ++host) {
        HostReceiver& receiver = context->receivers[host];
        receiver.context = context.get();
        receiver.row = host;
        receiver.client = openClient("sustain-" + options.instance + "-recv" + std::to_string(host));
        if (receiver.client == nullptr) return static_cast<int>(WorkerExit::NoDevice);
        for (uint32_t age = 0; age <= kBlockRepeats; ++age) {
            const std::string suffix = age == 0 ? "" : "_" + std::to_string(age) + "_ago";
            receiver.audio[age] = jack_port_register(receiver.client, ("audio" + suffix).c_str(), JACK_DEFAULT_AUDIO_TYPE,
                                                     JackPortIsInput, 0);
            receiver.label[age] = jack_port_register(receiver.client, ("label" + suffix).c_str(), JACK_DEFAULT_AUDIO_TYPE,
                                                     JackPortIsInput, 0);
        }
        jack_set_process_callback(receiver.client, hostReceiveProcess, &receiver);
    }
    if (context->playClient == nullptr) return static_cast<int>(WorkerExit::NoDevice);
    jack_client_t* request = context->requestClient;
    jack_client_t* play = context->playClient;
    if (jack_get_sample_rate(play) != segment.config.sampleRate || jack_get_buffer_size(play) != segment.config.framesPerBuffer) {
        spdlog::error("the JACK server runs at {} Hz, {} frames; the engine was started with --rate {} --frames {}",
                      jack_get_sample_rate(play), jack_get_buffer_size(play), segment.config.sampleRate,
                      segment.config.framesPerBuffer);
        return static_cast<int>(WorkerExit::StreamFailed);
    }
    context->request = jack_port_register(request, "request", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    for (uint32_t channel = 0; channel < kAudioChannels; ++channel)
        context->out[channel] = jack_port_register(play, ("out_" + std::to_string(channel + 1)).c_str(),
                                                   JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    context->jackMinusMonotonicNs.store(jackMinusMonotonicNs(), std::memory_order_relaxed);
    jack_set_process_callback(request, hostRequestProcess, context.get());
    jack_set_process_callback(play, hostPlayProcess, context.get());
    bool activated = jack_activate(request) == 0 && jack_activate(play) == 0;
    for (HostReceiver& receiver : context->receivers) activated = activated && jack_activate(receiver.client) == 0;
    if (!activated) {
        spdlog::error("cannot activate the output stage's JACK clients");
        return static_cast<int>(WorkerExit::StreamFailed);
    }
    // The stage plays on the machine's playback ports, the first two.
    const char** physical = jack_get_ports(play, nullptr, JACK_DEFAULT_AUDIO_TYPE, JackPortIsPhysical | JackPortIsInput);
    for (uint32_t channel = 0; physical != nullptr && channel < kAudioChannels && physical[channel] != nullptr; ++channel)
        jack_connect(play, jack_port_name(context->out[channel]), physical[channel]);
    if (physical != nullptr) jack_free(physical);
    jack_latency_range_t latency{};
    jack_port_get_latency_range(context->out[0], JackPlaybackLatency, &latency);
    const uint32_t playLatency = latency.max;
    publishPlayLatency(segment, playLatency, 0);
    std::snprintf(self.deviceName, sizeof self.deviceName, "JACK (render hosts over netjack2)");
    self.startedNs.store(monotonicNs(), std::memory_order_release);
    self.state.store(static_cast<uint32_t>(WorkerState::Active), std::memory_order_release);
    spdlog::info("host output stage: asks for blocks {} cycles ahead, output latency {} frames",
                 segment.hosts.playoutPeriods.load(), playLatency);

    // Diagnosis: every cycle's decision, appended to SUSTAIN_HOST_OUTPUT_TRACE's file.
    std::unique_ptr<HostTrace> trace;
    FILE* traceFile = nullptr;
    if (const char* path = std::getenv("SUSTAIN_HOST_OUTPUT_TRACE"); path != nullptr && *path != '\0') {
        trace = std::make_unique<HostTrace>();
        SpscRing<HostTraceRecord>::initialize(trace->indices, kHostTraceCapacity);
        traceFile = std::fopen(path, "a");
        if (traceFile != nullptr) context->trace.store(trace.get(), std::memory_order_release);
    }
    auto drainTrace = [&] {
        if (traceFile == nullptr) return;
        SpscRing<HostTraceRecord> ring(trace->indices, trace->slots);
        HostTraceRecord r;
        while (ring.tryPop(r))
            std::fprintf(traceFile, "%llu %llu %u %u %.7g %.7g\n", static_cast<unsigned long long>(r.cycle),
                         static_cast<unsigned long long>(r.jackUsecs), r.source, r.preferred, r.first, r.last);
        std::fflush(traceFile);
    };
    HostWiring wiring(*context, requestName + ":request");
    pollfd fds[2] = {{options.wakeFd, POLLIN, 0}, {signalFd, POLLIN, 0}};
    uint64_t nextClockNs = monotonicNs() + 1'000'000'000ull;
    for (;;) {
        self.controlBeats.fetch_add(1, std::memory_order_release);
        drainTrace();
        wiring.refresh();
        if (monotonicNs() > nextClockNs) {  // the two clocks drift apart slowly
            context->jackMinusMonotonicNs.store(jackMinusMonotonicNs(), std::memory_order_relaxed);
            nextClockNs = monotonicNs() + 1'000'000'000ull;
        }
        // On shutdown, the fade first (the callback says when it has played it; 100 ms at most).
        if (segment.control.shutdownRequested.load(std::memory_order_acquire) != 0) {
            const uint64_t deadline = monotonicNs() + 100'000'000ull;
            while (self.fadedOut.load(std::memory_order_acquire) == 0 && monotonicNs() < deadline) usleep(1000);
            break;
        }
        if (poll(fds, 2, 20) <= 0) continue;
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            char bytes[64];
            if (read(options.wakeFd, bytes, sizeof bytes) == 0) {
                spdlog::warn("sustaind closed the wake socket; stopping");
                break;
            }
        }
        if (fds[1].revents & POLLIN) {
            signalfd_siginfo info{};
            if (read(signalFd, &info, sizeof info) == sizeof info && info.ssi_signo != SIGPIPE) break;
        }
    }
    for (HostReceiver& receiver : context->receivers) jack_client_close(receiver.client);
    drainTrace();
    if (traceFile != nullptr) std::fclose(traceFile);
    jack_client_close(play);
    jack_client_close(request);
    self.exitReason.store(static_cast<uint32_t>(WorkerExit::Clean), std::memory_order_release);
    return 0;
}

}  // namespace
}  // namespace sustain

int main(int argc, char** argv) {
    sustain::ChildOptions options;
    CLI::App app{"sustain-host-output: the audio host's output stage (started by sustaind --role audio only)"};
    app.set_version_flag("--version", std::string("sustain-host-output ") + SUSTAIN_VERSION);
    sustain::addChildOptions(app, options);
    CLI11_PARSE(app, argc, argv);
    sustain::setupChildLogging("host-output", options, false);
    return sustain::runHostOutput(options);
}
