#include "hosts/render_host.h"

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
#include "supervisor/exit_status.h"
#include "sustain_version.h"

namespace sustain {
namespace {

constexpr int kReconnectMs = 250;
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
        spdlog::error("--net-name \"{}\": letters, digits, '-', '_' and '.', at most 31 (it is the render host's "
                      "netjack2 client name: jackd -d net -n NAME)", options.netName);
        return kExitUsage;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    const int signalFd = signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);

    auto context = std::make_unique<RenderHostContext>();
    TaggedCommandQueue queue(kRenderQueueCapacity);
    context->queue = &queue;
    LinkSession session;
    std::string error;
    std::string refusal;
    uint32_t generation = 0;
    PaStream* stream = nullptr;
    uint64_t lastReportNs = monotonicNs();
    bool announcedWait = false;
    int code = 0;
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
        if (fds[0].revents & POLLIN) break;
        if (session.connection.open()) {
            bool refused = false;
            const bool wasWelcomed = session.welcomed;
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
            if (session.welcomed && !wasWelcomed && stream == nullptr) {
                EngineConfig config{};
                config.sampleRate = session.welcome.sampleRate;
                config.framesPerBuffer = session.welcome.framesPerBuffer;
                config.voices = session.welcome.voices;
                std::snprintf(config.device, sizeof config.device, "%s", options.device.c_str());
                context->voices = config.voices;
                context->sampleRate = config.sampleRate;
                uint32_t channels = 0;
                const OpenedStream opened = openAndStartStream(config, "sustain-render-" + options.netName,
                                                               paRenderHostCallback, context.get(), 2, channels, 1);
                if (opened.stream == nullptr || channels < 2) {
                    spdlog::error("the render host needs a JACK server run by netjack2 (jackd -d net -C 1 -P 2 -n {}; "
                                  "docs/hosts.md) at {} Hz, {} frames", options.netName, config.sampleRate,
                                  config.framesPerBuffer);
                    code = kExitUnavailable;
                    break;
                }
                stream = opened.stream;
                lockMemory();
                spdlog::info("render host {} renders on {}: {} Hz, {} frames, {} voices, blocks asked {} cycles ahead",
                             options.netName, opened.device.name, config.sampleRate, config.framesPerBuffer,
                             config.voices, session.welcome.playoutPeriods);
            }
        }
        if (stream != nullptr && streamLost(stream)) {
            spdlog::error("the local JACK server (the netjack2 slave) went away");
            code = kExitUnavailable;
            break;
        }
        // A late command or a gap: ask for the audio host's state again (one at a time).
        const uint64_t now = monotonicNs();
        if (session.welcomed && context->resyncWanted.load(std::memory_order_acquire) != 0 &&
            (session.resyncAskedNs == 0 || now - session.resyncAskedNs > kResyncRetryNs)) {
            context->resyncWanted.store(0, std::memory_order_relaxed);
            if (session.connection.send(LinkType::ResyncRequest, nullptr, 0)) session.resyncAskedNs = now;
        }
        if (now - lastReportNs > 10'000'000'000ull) {
            lastReportNs = now;
            spdlog::info("rendered {} blocks ({} caught up), {} commands late, {} dropped, {} cycles without a request",
                         context->blocksRendered.load(), context->catchUpBlocks.load(), context->lateCommands.load(),
                         context->droppedCommands.load(), context->noRequest.load());
        }
    }
    if (stream != nullptr) closeStream(stream);
    return code;
}

}  // namespace sustain
