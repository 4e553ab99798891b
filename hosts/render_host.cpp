#include "hosts/render_host.h"

#include <jack/jack.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "engine/process_setup.h"
#include "hosts/link_connection.h"
#include "hosts/netjack_ports.h"
#include "hosts/render_callback.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "supervisor/exit_status.h"
#include "supervisor/stop_signals.h"
#include "supervisor/worker_process.h"
#include "sustain_version.h"

namespace sustain {
namespace {

constexpr int kReconnectMs = 250;
/// Requests missing this long while the link is up: the netjack2 slave lost the audio host.
constexpr uint64_t kNoRequestRestartNs = 300'000'000;
/// A slave that found no audio host within this long is started again (it may wait on an
/// audio host that came back under another address, or a netmanager that restarted).
constexpr uint64_t kSlaveStartTimeoutNs = 10'000'000'000;
/// A stream that would not open on a ready slave is tried again after this long, and the
/// slave started anew after kOpenAttempts of them: every start of a slave leaves a client
/// on the audio host's server until its netmanager drops it (2 s), so starts are not hurried.
constexpr uint64_t kOpenRetryNs = 500'000'000;
constexpr int kOpenAttempts = 3;
/// How often a slave that waits for the audio host is asked whether it found it.
constexpr uint64_t kProbeIntervalNs = 50'000'000;

/// The render host's netjack2 slave: `jackd -d net`, a child of this process.
class NetjackSlave {
public:
    explicit NetjackSlave(const RenderHostOptions& options)
        : options_(options), serverName_("sustain-render-" + options.instance) {}

    const std::string& serverName() const { return serverName_; }
    bool running() const { return process_.running(); }

    bool start(std::string& error) {
        if (binary_.fd < 0 && !binary_.open(findJackd(), error)) {
            error = "cannot run jackd (" + error + "): apt-get install jackd2";
            return false;
        }
        return process_.spawn(binary_,
                              {"-n", serverName_, "-R", "-S", "-d", "net", "-a", options_.audioHost, "-p",
                               std::to_string(options_.netPort), "-C", "1", "-P", std::to_string(kNetjackReturnChannels), "-n", options_.netName, "-l",
                               std::to_string(options_.netLatency)},
                              error);
    }

    /// Whether the slave carries the audio host's channels. Its server answers clients as soon
    /// as it starts, but `jackd -d net` makes its system ports only once it found the audio
    /// host's netmanager: a stream opened before that finds no device. One probe client
    /// stays open while it waits and asks every kProbeIntervalNs: opening a client is a
    /// registration the server works for, and a slave may wait for seconds.
    bool ready() {
        const uint64_t now = monotonicNs();
        if (now < nextProbeNs_) return false;
        nextProbeNs_ = now + kProbeIntervalNs;
        if (probe_ == nullptr) {
            jack_status_t status{};
            // JACK names a client's socket by the client alone, whatever the server: a name of
            // this host's own, so that render hosts sharing a machine (a rehearsal) do not meet.
            const std::string name = "sustain-probe-" + options_.netName;
            probe_ = jack_client_open(name.c_str(), JackNoStartServer, &status);
            if (probe_ == nullptr) return false;
        }
        const char** playback =
            jack_get_ports(probe_, "^system:playback_", JACK_DEFAULT_AUDIO_TYPE, JackPortIsPhysical | JackPortIsInput);
        size_t count = 0;
        while (playback != nullptr && playback[count] != nullptr) ++count;
        jack_free(static_cast<void*>(playback));
        if (count < kNetjackReturnChannels) return false;
        closeProbe();
        return true;
    }

    void stop() {
        closeProbe();
        nextProbeNs_ = 0;
        if (!process_.running()) return;
        ::kill(process_.pid(), SIGTERM);  // it leaves JACK's server registry clean
        const uint64_t deadline = monotonicNs() + 1'000'000'000ull;
        while (!process_.tryReap() && monotonicNs() < deadline) usleep(5000);
        if (process_.running()) process_.killAndReap();
        process_.release();
    }

    bool exited() { return process_.running() && process_.tryReap(); }

private:
    static std::string findJackd() {
        const char* path = std::getenv("PATH");
        std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
        size_t at = 0;
        while (at <= dirs.size()) {
            const size_t end = dirs.find(':', at);
            const std::string dir = dirs.substr(at, end == std::string::npos ? std::string::npos : end - at);
            std::string candidate = (dir.empty() ? "." : dir) + "/jackd";
            if (access(candidate.c_str(), X_OK) == 0) return candidate;
            if (end == std::string::npos) break;
            at = end + 1;
        }
        return "/usr/bin/jackd";
    }

    void closeProbe() {
        if (probe_ != nullptr) jack_client_close(probe_);
        probe_ = nullptr;
    }

    const RenderHostOptions& options_;
    std::string serverName_;
    jack_client_t* probe_ = nullptr;
    uint64_t nextProbeNs_ = 0;
    HelperBinary binary_;
    WorkerProcess process_;
};
constexpr uint64_t kResyncRetryNs = 500'000'000;  // a re-sync asked for and not answered is asked again

/// What the render host keeps of its link between messages.
struct LinkSession {
    LinkConnection connection;
    bool welcomed = false;
    WelcomePayload welcome{};
    uint64_t resyncAskedNs = 0;  // 0: none outstanding
};

bool sendHello(LinkConnection& connection, const std::string& netName) {
    HelloPayload hello{};
    hello.protocol = kLinkProtocol;
    std::snprintf(hello.version, sizeof hello.version, "%s", SUSTAIN_VERSION);
    std::snprintf(hello.netName, sizeof hello.netName, "%s", netName.c_str());
    return connection.send(LinkType::Hello, &hello, sizeof hello);
}

/// Hands the link's messages to the callback (the snapshot through its seqlock, each command
/// through the queue). Returns false when the audio host refused this host for good.
bool handleMessage(RenderHostContext& context, LinkSession& session, LinkType type, const uint8_t* payload,
                   uint32_t length, uint32_t& generation, std::string& refusal) {
    switch (type) {
        case LinkType::Welcome:
            if (length == sizeof(WelcomePayload)) {
                std::memcpy(&session.welcome, payload, sizeof session.welcome);
                session.welcomed = true;
            }
            return true;
        case LinkType::Refused: {
            RefusedPayload refused{};
            std::memcpy(&refused, payload, std::min<size_t>(length, sizeof refused));
            refused.reason[sizeof refused.reason - 1] = '\0';
            refusal = refused.reason;
            return false;
        }
        case LinkType::Snapshot: {
            if (length != sizeof(SnapshotPayload)) return true;
            SnapshotPayload snapshot;
            std::memcpy(&snapshot, payload, sizeof snapshot);
            RenderSnapshot handover{};
            handover.generation = ++generation;
            handover.rampSamples = session.welcome.rampSamples;
            handover.state = snapshot.state;
            seqlockWrite(context.snapshotSequence, context.snapshotWords, handover);
            context.snapshotGeneration.store(handover.generation, std::memory_order_release);
            context.linkUp.store(1, std::memory_order_release);
            session.resyncAskedNs = 0;
            return true;
        }
        case LinkType::Command: {
            if (length != sizeof(TaggedCommand)) return true;
            QueuedTaggedCommand item{};
            std::memcpy(&item.command, payload, sizeof item.command);
            item.generation = generation;
            if (!context.queue->try_enqueue(item)) {
                // The callback cannot keep up with the link: rendering on without this one
                // would be out of step; a snapshot holds it.
                context.droppedCommands.fetch_add(1, std::memory_order_relaxed);
                context.resyncWanted.store(1, std::memory_order_release);
            }
            return true;
        }
        default:
            return true;
    }
}

}  // namespace

int runRenderHost(const RenderHostOptions& options) {
    if (!validNetName(options.netName)) {
        spdlog::error("--net-name \"{}\": letters, digits, '-', '_' and '.', at most 31 (it names the render host's "
                      "netjack2 client on the audio host)", options.netName);
        return kExitUsage;
    }
    // It names the render host's JACK server (a path under /dev/shm).
    if (std::string why = validateInstanceName(options.instance); !why.empty()) {
        spdlog::error("--instance \"{}\": {}", options.instance, why);
        return kExitUsage;
    }
    const int signalFd = openStopSignalFd();
    // libjack prints every failed attempt to reach a server; while the slave waits for the
    // audio host that is one every 10 ms. What matters is said in our own words.
    jack_set_error_function([](const char* message) { spdlog::debug("JACK: {}", message); });

    auto context = std::make_unique<RenderHostContext>();
    TaggedCommandQueue queue(kRenderQueueCapacity);
    context->queue = &queue;
    NetjackSlave slave(options);
    setenv("JACK_DEFAULT_SERVER", slave.serverName().c_str(), 1);  // the stream's server, for PortAudio
    LinkSession session;
    std::string error;
    std::string refusal;
    uint32_t generation = 0;
    PaStream* stream = nullptr;
    uint64_t slaveStartedNs = 0;
    uint64_t lastRequestNs = 0;   // when requests were last seen to arrive
    uint64_t lastNoRequest = 0;
    uint64_t lastReportNs = monotonicNs();
    uint64_t restarts = 0;
    uint64_t nextOpenNs = 0;
    int failedOpens = 0;
    bool announcedWait = false;
    int code = 0;
    auto stopAudio = [&] {
        if (stream != nullptr) closeStream(stream);
        stream = nullptr;
        slave.stop();
        slaveStartedNs = 0;
        failedOpens = 0;
        nextOpenNs = 0;
    };
    for (;;) {
        if (!session.connection.open()) {
            session.welcomed = false;
            if (!session.connection.connectTo(options.audioHost, options.hostPort, 1000, error) ||
                !sendHello(session.connection, options.netName)) {
                if (!announcedWait)
                    spdlog::warn("audio host {}:{}: {}; trying again every {} ms", options.audioHost, options.hostPort,
                                 error, kReconnectMs);
                announcedWait = true;
            } else {
                spdlog::info("connected to the audio host {}:{} as {}", options.audioHost, options.hostPort, options.netName);
                announcedWait = false;
            }
        }
        pollfd fds[2] = {{signalFd, POLLIN, 0}, {session.connection.fd(), POLLIN, 0}};
        if (session.connection.wantsWrite()) fds[1].events |= POLLOUT;
        poll(fds, session.connection.open() ? 2 : 1, session.connection.open() ? 10 : kReconnectMs);
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            if (read(signalFd, &info, sizeof info) == sizeof info && info.ssi_signo != SIGHUP) break;
        }
        const uint64_t now = monotonicNs();
        if (session.connection.open()) {
            bool refused = false;
            const bool open = session.connection.receive([&](LinkType type, const uint8_t* payload, uint32_t length) {
                if (!refused && !handleMessage(*context, session, type, payload, length, generation, refusal)) refused = true;
            });
            if (refused) {
                spdlog::error("the audio host refused this render host: {}", refusal);
                code = kExitConfig;
                break;
            }
            if (!open) {
                context->linkUp.store(0, std::memory_order_release);
                spdlog::warn("link to the audio host lost: {}", session.connection.error());
            }
            session.connection.flush();
        }
        if (!session.welcomed) continue;
        context->voices = session.welcome.voices;
        context->sampleRate = session.welcome.sampleRate;

        // The netjack2 slave and the stream on it: started once welcomed, started anew when
        // they stop carrying requests.
        if (slave.exited()) {
            spdlog::warn("the netjack2 slave (jackd -d net) stopped; starting it again");
            stopAudio();
        }
        if (!slave.running()) {
            if (!slave.start(error)) {
                spdlog::error("{}", error);
                code = kExitUnavailable;
                break;
            }
            slaveStartedNs = now;
        }
        if (stream == nullptr) {
            if (now < nextOpenNs) continue;
            if (!slave.ready()) {
                if (now - slaveStartedNs > kSlaveStartTimeoutNs) {
                    spdlog::warn("the netjack2 slave found no audio host at {}:{} within {} s; starting it again",
                                 options.audioHost, options.netPort, kSlaveStartTimeoutNs / 1'000'000'000);
                    stopAudio();
                }
                continue;
            }
            EngineConfig config{};
            config.sampleRate = session.welcome.sampleRate;
            config.framesPerBuffer = session.welcome.framesPerBuffer;
            config.voices = session.welcome.voices;
            std::snprintf(config.device, sizeof config.device, "system");
            const OpenedStream opened =
                openAndStartStream(config, "sustain-render-" + options.netName, paRenderHostCallback, context.get(),
                                   static_cast<int>(kNetjackReturnChannels), context->outputChannels, 1);
            if (opened.stream == nullptr || context->outputChannels < kNetjackReturnChannels) {
                if (opened.stream != nullptr) closeStream(opened.stream);
                if (++failedOpens < kOpenAttempts) {
                    spdlog::warn("cannot render on the netjack2 slave ({} Hz, {} frames); trying again in {} ms",
                                 config.sampleRate, config.framesPerBuffer, kOpenRetryNs / 1'000'000);
                    nextOpenNs = now + kOpenRetryNs;
                } else {
                    spdlog::warn("cannot render on the netjack2 slave ({} Hz, {} frames) after {} attempts; starting "
                                 "it again", config.sampleRate, config.framesPerBuffer, kOpenAttempts);
                    stopAudio();
                }
                continue;
            }
            stream = opened.stream;
            lastRequestNs = now;
            lastNoRequest = context->noRequest.load();
            lockMemory();
            spdlog::info("render host {} renders through its netjack2 slave {}: {} Hz, {} frames, {} voices, blocks "
                         "asked {} cycles ahead{}", options.netName, slave.serverName(), config.sampleRate,
                         config.framesPerBuffer, config.voices, session.welcome.playoutPeriods,
                         restarts > 0 ? fmt::format(" (start {})", restarts + 1) : "");
        }
        const uint64_t noRequest = context->noRequest.load(std::memory_order_relaxed);
        if (noRequest == lastNoRequest) lastRequestNs = now;
        lastNoRequest = noRequest;
        if (streamLost(stream) || now - lastRequestNs > kNoRequestRestartNs) {
            spdlog::warn("no request from the audio host for {} ms{}: starting the netjack2 slave again",
                         (now - lastRequestNs) / 1'000'000, streamLost(stream) ? " (the slave's server went away)" : "");
            stopAudio();
            ++restarts;
            continue;
        }
        // A late command or a gap: ask for the audio host's state again (one at a time).
        if (context->resyncWanted.load(std::memory_order_acquire) != 0 &&
            (session.resyncAskedNs == 0 || now - session.resyncAskedNs > kResyncRetryNs)) {
            context->resyncWanted.store(0, std::memory_order_relaxed);
            if (session.connection.send(LinkType::ResyncRequest, nullptr, 0)) session.resyncAskedNs = now;
        }
        if (now - lastReportNs > 10'000'000'000ull) {
            lastReportNs = now;
            spdlog::info("rendered {} blocks ({} caught up), {} commands late, {} dropped, {} cycles without a "
                         "request, slave started {} times", context->blocksRendered.load(), context->catchUpBlocks.load(),
                         context->lateCommands.load(), context->droppedCommands.load(), noRequest, restarts + 1);
        }
    }
    stopAudio();
    return code;
}

}  // namespace sustain
