#include "hosts/audio_host.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "hosts/host_health.h"
#include "osc/socket_address.h"
#include "shm/clock.h"
#include "shm/seqlock.h"
#include "shm/spsc_ring.h"
#include "supervisor/exit_status.h"
#include "supervisor/stop_signals.h"
#include "sustain_version.h"

namespace sustain {
namespace {

constexpr int kTickMs = 2;
constexpr uint64_t kHelloTimeoutNs = 2'000'000'000;
constexpr uint64_t kStageRestartNs = 200'000'000;
constexpr size_t kMaxLinks = kRenderHostSlots + 2;  // rows, and room for a newcomer's hello

const char* stateName(HostState state) {
    switch (state) {
        case HostState::Empty: return "empty";
        case HostState::Joining: return "joining";
        case HostState::InStep: return "in step";
        case HostState::Down: return "down";
    }
    return "?";
}

std::string rowName(const RenderHostSlot& slot) { return std::string(slot.netName, strnlen(slot.netName, sizeof slot.netName)); }

}  // namespace

AudioHost::AudioHost(Segment& segment, CommandRouter& router, AudioHostOptions options)
    : segment_(segment), router_(router), options_(std::move(options)) {}

AudioHost::~AudioHost() {
    links_.clear();
    if (listenFd_ >= 0) close(listenFd_);
    if (signalFd_ >= 0) close(signalFd_);
    if (wakeRead_ >= 0) close(wakeRead_);
    if (wakeWrite_ >= 0) close(wakeWrite_);
}

bool AudioHost::start(std::string& error) {
    HostsRegion& hosts = segment_.hosts;
    hosts.playoutPeriods.store(options_.playoutPeriods, std::memory_order_release);
    hosts.preferred.store(0, std::memory_order_release);
    segment_.config.role = static_cast<uint32_t>(EngineRole::AudioHost);
    TaggedRenderConfig config;
    config.voices = segment_.config.voices;
    config.rampSamples = segment_.config.rampSamples;
    config.sampleRate = segment_.config.sampleRate;
    reference_.configure(config);

    // The OSC thread's commands arrive through worker slot 0's ring, as a worker's would.
    int wake[2];
    if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        error = std::string("pipe: ") + std::strerror(errno);
        return false;
    }
    wakeRead_ = wake[0];
    wakeWrite_ = wake[1];
    SpscRing<Command>::initialize(segment_.rings[0].indices, kCommandRingCapacity);
    router_.attachWorker(0, wakeWrite_);

    signalFd_ = openStopSignalFd();

    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    addrinfo* found = nullptr;
    if (getaddrinfo(options_.bindAddress.c_str(), std::to_string(options_.hostPort).c_str(), &hints, &found) != 0 ||
        found == nullptr) {
        error = "--bind " + options_.bindAddress + ": not an address";
        return false;
    }
    listenFd_ = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool bound = listenFd_ >= 0 && bind(listenFd_, found->ai_addr, found->ai_addrlen) == 0 && listen(listenFd_, 8) == 0;
    freeaddrinfo(found);
    if (!bound) {
        error = "cannot listen for render hosts on " + options_.bindAddress + " port " + std::to_string(options_.hostPort) +
                ": " + std::strerror(errno) + (errno == EADDRINUSE ? " (another program holds it: --host-port)" : "");
        return false;
    }

    if (!spawnStage(error)) return false;
    const uint64_t deadline = monotonicNs() + 5'000'000'000ull;
    while (hosts.cycle.load(std::memory_order_acquire) == 0) {
        if (stage_.tryReap() || monotonicNs() > deadline) {
            error = "the host output stage did not start (" +
                    (stage_.running() ? std::string("no cycle in 5 s") : stage_.exit().describe()) +
                    "): the audio host needs a running JACK server (with `jack_load netmanager` for the render "
                    "hosts; docs/hosts.md)";
            return false;
        }
        usleep(1000);
    }
    advanceReference();
    segment_.slots[0].role.store(static_cast<uint32_t>(WorkerRole::Active), std::memory_order_relaxed);
    segment_.slots[0].state.store(static_cast<uint32_t>(WorkerState::Active), std::memory_order_relaxed);
    segment_.control.activeSlot.store(0, std::memory_order_release);
    segment_.control.supervisorPid.store(getpid(), std::memory_order_relaxed);
    segment_.control.ready.store(1, std::memory_order_release);
    spdlog::info("audio host: render hosts connect to {} port {}; blocks are asked for {} cycles ahead",
                 options_.bindAddress, options_.hostPort, options_.playoutPeriods);
    return true;
}

bool AudioHost::spawnStage(std::string& error) {
    WorkerSlot& slot = segment_.outputs[0];
    slot.state.store(static_cast<uint32_t>(WorkerState::Starting), std::memory_order_release);
    slot.role.store(static_cast<uint32_t>(WorkerRole::Output), std::memory_order_release);
    slot.callbacks.store(0, std::memory_order_relaxed);
    WorkerProcess process;
    if (!process.spawn(options_.hostOutput,
                       {"--instance", options_.instance, "--wake-fd", "3", "--supervisor-pid", std::to_string(getpid()),
                        "--log-level", options_.logLevel},
                       error))
        return false;
    slot.pid.store(process.pid(), std::memory_order_release);
    stage_ = std::move(process);
    stageRestartNs_ = 0;
    return true;
}

uint64_t AudioHost::earliestTag() const {
    return segment_.hosts.cycle.load(std::memory_order_acquire) + options_.playoutPeriods + kCommandMarginCycles;
}

void AudioHost::advanceReference() {
    const uint64_t target = earliestTag();
    if (!referenceStarted_) {
        // From the state table, which holds every value accepted so far.
        RenderState state;
        initialRenderState(state, options_.masterGain);
        for (uint32_t param = 0; param < kParamCount; ++param) {
            const ParamEntry& entry = segment_.params.entries[param];
            const uint64_t version = entry.version.load(std::memory_order_acquire);
            applyParam(state, param, entry.value.load(std::memory_order_relaxed), 0);
            state.appliedSequence[param] = version;
        }
        state.blocks = target;
        reference_.reset(state);
        referenceStarted_ = true;
    }
    const uint32_t frames = segment_.config.framesPerBuffer;
    while (reference_.nextTag() < target) reference_.render(scratch_, 1, frames);
    // What /engine/sync and the status read as the state the engine renders from.
    PublishedRender published{segment_.slots[0].epoch.load(std::memory_order_relaxed), reference_.state()};
    seqlockWrite(segment_.state[0].sequence, segment_.state[0].words, published);
    segment_.state[0].heartbeatNs.store(monotonicNs(), std::memory_order_release);
}

void AudioHost::drainCommands() {
    SpscRing<Command> ring = commandRing(segment_, 0);
    const uint64_t earliest = earliestTag();
    const uint32_t frames = segment_.config.framesPerBuffer;
    WorkerMetrics& metrics = segment_.workers[0];
    Command command;
    for (uint32_t taken = 0; taken < kCommandRingCapacity && ring.tryPop(command); ++taken) {
        TaggedCommand tagged{};
        tagged.sequence = command.sequence;
        tagged.value = command.value;
        tagged.param = command.param;
        tagged.flags = command.flags;
        tagged.tag = earliest;
        if ((command.flags & kCommandFlagTimed) != 0) {
            // Its frame is in the stage's numbering: frame cycle * period plays in that cycle.
            const uint64_t tag = command.dueFrame / frames;
            if (tag >= earliest) {
                tagged.tag = tag;
                tagged.offset = static_cast<uint32_t>(command.dueFrame % frames);
                metrics.timedApplied.fetch_add(1, std::memory_order_relaxed);
            } else {
                metrics.timedLate.fetch_add(1, std::memory_order_relaxed);
                metrics.timedLateFramesLast.store((earliest - tag) * frames, std::memory_order_relaxed);
            }
        }
        reference_.add(tagged);
        metrics.drained.fetch_add(1, std::memory_order_relaxed);
        metrics.applied.fetch_add(1, std::memory_order_relaxed);
        for (Link& link : links_) {
            if (link.row < 0 || !link.connection.open()) continue;
            if (link.connection.send(LinkType::Command, &tagged, sizeof tagged))
                segment_.hosts.hosts[link.row].commandsSent.fetch_add(1, std::memory_order_relaxed);
        }
    }
}

void AudioHost::acceptLinks() {
    for (;;) {
        sockaddr_storage from{};
        socklen_t length = sizeof from;
        const int fd = accept4(listenFd_, reinterpret_cast<sockaddr*>(&from), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        const std::string address = describeAddress(from);
        if (!options_.allow.allows(from) || links_.size() >= kMaxLinks) {
            spdlog::warn("render host link from {} refused: {}", address,
                         links_.size() >= kMaxLinks ? "too many connections" : "not in --allow");
            close(fd);
            continue;
        }
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        Link link;
        link.connection = LinkConnection(fd);
        link.address = address;
        link.acceptedNs = monotonicNs();
        links_.push_back(std::move(link));
    }
}

void AudioHost::handleHello(Link& link, const uint8_t* payload, uint32_t length) {
    auto refuse = [&](const std::string& reason) {
        spdlog::warn("render host at {} refused: {}", link.address, reason);
        RefusedPayload refused{};
        std::snprintf(refused.reason, sizeof refused.reason, "%s", reason.c_str());
        link.connection.send(LinkType::Refused, &refused, sizeof refused);
        link.connection.flush();
        closeLink(link, "refused");
    };
    if (length != sizeof(HelloPayload)) return refuse("not a sustain render host (hello of the wrong size)");
    HelloPayload hello;
    std::memcpy(&hello, payload, sizeof hello);
    hello.version[sizeof hello.version - 1] = '\0';
    hello.netName[sizeof hello.netName - 1] = '\0';
    const std::string name = hello.netName;
    if (hello.protocol != kLinkProtocol || std::strcmp(hello.version, SUSTAIN_VERSION) != 0)
        return refuse(std::string("sustain ") + hello.version + " (link protocol " + std::to_string(hello.protocol) +
                      "); the audio host runs " + SUSTAIN_VERSION + ": every host must run the same version");
    if (!validNetName(name)) return refuse("--net-name \"" + name + "\" is not a valid JACK client name");
    HostsRegion& hosts = segment_.hosts;
    int row = -1;
    for (uint32_t r = 0; r < kRenderHostSlots && row < 0; ++r)
        if (rowName(hosts.hosts[r]) == name) row = static_cast<int>(r);
    for (uint32_t r = 0; r < kRenderHostSlots && row < 0; ++r)
        if (hosts.hosts[r].state.load() == static_cast<uint32_t>(HostState::Empty)) row = static_cast<int>(r);
    for (uint32_t r = 0; r < kRenderHostSlots && row < 0; ++r)
        if (hosts.hosts[r].connected.load() == 0) row = static_cast<int>(r);
    if (row < 0) return refuse("two render hosts are connected already");
    for (const Link& other : links_)
        if (&other != &link && other.row == row && other.connection.open())
            return refuse("a render host named " + name + " is connected already");
    RenderHostSlot& slot = hosts.hosts[row];
    const bool returning = slot.state.load() == static_cast<uint32_t>(HostState::Down);
    std::snprintf(slot.netName, sizeof slot.netName, "%s", name.c_str());
    std::snprintf(slot.address, sizeof slot.address, "%s", link.address.c_str());
    blocksAtJoin_[row] = slot.blocks.load(std::memory_order_relaxed);
    slot.connected.store(1, std::memory_order_relaxed);
    slot.state.store(static_cast<uint32_t>(HostState::Joining), std::memory_order_relaxed);
    if (returning && slot.upSinceNs.load() == 0) slot.upSinceNs.store(monotonicNs(), std::memory_order_relaxed);
    slot.joins.fetch_add(1, std::memory_order_relaxed);
    slot.linkGeneration.fetch_add(1, std::memory_order_release);
    link.row = row;
    WelcomePayload welcome{};
    welcome.protocol = kLinkProtocol;
    welcome.slot = static_cast<uint32_t>(row);
    welcome.sampleRate = segment_.config.sampleRate;
    welcome.framesPerBuffer = segment_.config.framesPerBuffer;
    welcome.voices = segment_.config.voices;
    welcome.rampSamples = segment_.config.rampSamples;
    welcome.playoutPeriods = options_.playoutPeriods;
    spdlog::info("render host {} joined from {} (row {})", name, link.address, row);
    if (link.connection.send(LinkType::Welcome, &welcome, sizeof welcome)) sendSnapshot(link);
}

void AudioHost::sendSnapshot(Link& link) {
    advanceReference();
    SnapshotPayload snapshot{};
    snapshot.state = reference_.state();
    if (!link.connection.send(LinkType::Snapshot, &snapshot, sizeof snapshot)) return;
    for (uint32_t i = 0; i < reference_.pendingCount(); ++i) {
        const TaggedCommand& command = reference_.pendingAt(i);
        if (!link.connection.send(LinkType::Command, &command, sizeof command)) return;
    }
    segment_.hosts.hosts[link.row].snapshotsSent.fetch_add(1, std::memory_order_relaxed);
}

void AudioHost::serviceLink(Link& link) {
    const bool open = link.connection.receive([&](LinkType type, const uint8_t* payload, uint32_t length) {
        if (!link.connection.open()) return;
        if (type == LinkType::Hello && link.row < 0)
            handleHello(link, payload, length);
        else if (type == LinkType::ResyncRequest && link.row >= 0)
            sendSnapshot(link);
    });
    if (open) link.connection.flush();
    if (!link.connection.open()) closeLink(link, link.connection.error());
    else if (link.row < 0 && monotonicNs() - link.acceptedNs > kHelloTimeoutNs) {
        link.connection.close();
        closeLink(link, "no hello within 2 s");
    }
}

void AudioHost::closeLink(Link& link, const std::string& why) {
    link.connection.close();
    if (link.row >= 0) {
        RenderHostSlot& slot = segment_.hosts.hosts[link.row];
        slot.connected.store(0, std::memory_order_release);
        spdlog::warn("render host {}: link closed ({})", rowName(slot), why);
    }
    link.row = -1;
}

void AudioHost::judgeHosts(uint64_t nowNs) {
    HostsRegion& hosts = segment_.hosts;
    HostState states[kRenderHostSlots];
    for (uint32_t row = 0; row < kRenderHostSlots; ++row) {
        RenderHostSlot& slot = hosts.hosts[row];
        HostObservation seen;
        seen.state = static_cast<HostState>(slot.state.load(std::memory_order_relaxed));
        seen.connected = slot.connected.load(std::memory_order_acquire) != 0;
        seen.deliveredSinceJoin = slot.blocks.load(std::memory_order_relaxed) - blocksAtJoin_[row];
        seen.missingRun = slot.missingRun.load(std::memory_order_relaxed);
        seen.inStepRun = slot.inStepRun.load(std::memory_order_relaxed);
        const HostState next = judgeHost(seen);
        states[row] = next;
        if (next == seen.state) continue;
        if (next == HostState::Down) {
            slot.downs.fetch_add(1, std::memory_order_relaxed);
            slot.upSinceNs.store(0, std::memory_order_relaxed);
        } else if (seen.state == HostState::Down && slot.upSinceNs.load() == 0) {
            slot.upSinceNs.store(nowNs, std::memory_order_relaxed);
        }
        if (next == HostState::InStep && slot.upSinceNs.load() != 0) {
            const uint64_t warmUs = (nowNs - slot.upSinceNs.load()) / 1000;
            slot.warmUsLast.store(warmUs, std::memory_order_relaxed);
            if (warmUs > slot.warmUsMax.load()) slot.warmUsMax.store(warmUs, std::memory_order_relaxed);
            slot.upSinceNs.store(0, std::memory_order_relaxed);
        }
        spdlog::info("render host {} (row {}): {} -> {}", rowName(slot), row, stateName(seen.state), stateName(next));
        slot.state.store(static_cast<uint32_t>(next), std::memory_order_release);
    }
    const uint32_t current = hosts.preferred.load(std::memory_order_relaxed);
    const uint32_t next = choosePreferred(current, states);
    if (next != current) {
        if (states[current] == HostState::Down) {
            hosts.failovers.fetch_add(1, std::memory_order_relaxed);
            segment_.supervisor.failovers.fetch_add(1, std::memory_order_relaxed);
        }
        spdlog::info("playing render host {} (row {}); {} is {}", rowName(hosts.hosts[next]), next,
                     rowName(hosts.hosts[current]), stateName(states[current]));
        hosts.preferred.store(next, std::memory_order_release);
    }
    uint32_t inStep = 0;
    for (HostState state : states) inStep += state == HostState::InStep ? 1 : 0;
    SupervisorMetrics& metrics = segment_.supervisor;
    metrics.spareReady.store(inStep >= 2 ? 1 : 0, std::memory_order_relaxed);
    metrics.degradedReason.store(static_cast<uint32_t>(inStep >= 2 ? DegradedReason::None : DegradedReason::NoSpare),
                                 std::memory_order_relaxed);
}

void AudioHost::superviseStage(uint64_t nowNs) {
    if (stage_.running() && stage_.tryReap()) {
        spdlog::error("the host output stage stopped: {}; starting it again", stage_.exit().describe());
        stage_.release();
        segment_.outputs[0].pid.store(0, std::memory_order_release);
        segment_.outputs[0].state.store(static_cast<uint32_t>(WorkerState::Dead), std::memory_order_release);
        segment_.supervisor.crashCount.fetch_add(1, std::memory_order_relaxed);
        stageRestartNs_ = nowNs + kStageRestartNs;
    }
    if (stageRestartNs_ != 0 && nowNs >= stageRestartNs_) {
        std::string error;
        if (spawnStage(error))
            segment_.supervisor.replacements.fetch_add(1, std::memory_order_relaxed);
        else
            stageRestartNs_ = nowNs + kStageRestartNs;
    }
}

int AudioHost::run() {
    SpscRing<Command> ring = commandRing(segment_, 0);
    std::vector<pollfd> fds;
    for (;;) {
        fds.clear();
        fds.push_back({signalFd_, POLLIN, 0});
        fds.push_back({listenFd_, POLLIN, 0});
        fds.push_back({wakeRead_, POLLIN, 0});
        for (const Link& link : links_)
            fds.push_back({link.connection.fd(), static_cast<short>(POLLIN | (link.connection.wantsWrite() ? POLLOUT : 0)), 0});
        const bool sleep = ring.prepareToSleep();
        poll(fds.data(), fds.size(), sleep ? kTickMs : 0);
        ring.wokeUp();
        char bytes[64];
        while (read(wakeRead_, bytes, sizeof bytes) > 0) {
        }
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            if (read(signalFd_, &info, sizeof info) == sizeof info && info.ssi_signo != SIGHUP) break;
        }
        const uint64_t now = monotonicNs();
        segment_.control.supervisorHeartbeatNs.store(now, std::memory_order_release);
        if (fds[1].revents & POLLIN) acceptLinks();
        advanceReference();
        drainCommands();
        for (Link& link : links_) {
            if (link.connection.open()) serviceLink(link);
            // Closed here or while a command was sent to it (a peer that does not keep up).
            if (!link.connection.open() && link.row >= 0) closeLink(link, link.connection.error());
        }
        std::erase_if(links_, [](const Link& link) { return !link.connection.open(); });
        judgeHosts(now);
        superviseStage(now);
        if (notifier_ != nullptr) {
            notifier_->watchdog(now);
            notifier_->report(segment_.supervisor, true, false);  // the spare: a second render host in step
        }
    }
    if (notifier_ != nullptr) notifier_->stopping();
    spdlog::info("stopping: the host output stage fades out");
    segment_.control.shutdownRequested.store(1, std::memory_order_release);
    if (stage_.running()) {
        const uint64_t deadline = monotonicNs() + 2'000'000'000ull;
        while (!stage_.tryReap() && monotonicNs() < deadline) usleep(5000);
        if (stage_.running()) stage_.killAndReap();
    }
    links_.clear();
    return 0;
}

}  // namespace sustain
