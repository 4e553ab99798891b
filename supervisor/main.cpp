// sustaind: the program users start. Owns the shared memory, receives OSC, runs and
// watches the worker. See README.md for the flags and docs/ for the design decisions.
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <csignal>
#include <filesystem>

#include "hosts/audio_host.h"
#include "hosts/link_protocol.h"
#include "hosts/render_host.h"
#include "osc/command_router.h"
#include "osc/mapping.h"
#include "osc/osc_server.h"
#include "shm/fault_point.h"
#include "shm/layout.h"
#include "shm/process_log.h"
#include "shm/segment.h"
#include "supervisor/exit_status.h"
#include "supervisor/service_notify.h"
#include "supervisor/stop_signals.h"
#include "supervisor/supervisor.h"
#include "supervisor/zeroconf.h"
#include "sustain_features.h"
#include "sustain_version.h"

#ifndef SUSTAIN_WORKER_BUILD_PATH
#define SUSTAIN_WORKER_BUILD_PATH ""
#endif
#ifndef SUSTAIN_OUTPUT_BUILD_PATH
#define SUSTAIN_OUTPUT_BUILD_PATH ""
#endif
#ifndef SUSTAIN_HOST_OUTPUT_BUILD_PATH
#define SUSTAIN_HOST_OUTPUT_BUILD_PATH ""
#endif
#ifndef SUSTAIN_SUPERVISOR_BUILD_PATH
#define SUSTAIN_SUPERVISOR_BUILD_PATH ""
#endif

namespace sustain {
namespace {

/// File descriptors sustaind needs at the least for itself and each child (which inherit
/// the limit): its own ~30, and libjack's client (which crashes inside jack_client_open,
/// rather than failing, when it runs out). Below this the engine refuses to start.
constexpr rlim_t kMinFileDescriptors = 64;
constexpr rlim_t kWantedFileDescriptors = 256;

/// Raises the soft RLIMIT_NOFILE towards kWantedFileDescriptors (up to the hard limit), and
/// refuses, with the fix, when even the hard limit is below kMinFileDescriptors.
bool ensureFileDescriptors() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return true;  // cannot tell: go on
    if (limit.rlim_cur < kWantedFileDescriptors) {
        rlimit raised = limit;
        raised.rlim_cur = std::min<rlim_t>(kWantedFileDescriptors, limit.rlim_max);
        if (raised.rlim_cur > limit.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    if (limit.rlim_cur >= kMinFileDescriptors) return true;
    spdlog::error("too few file descriptors: the limit is {} (hard {}), sustain needs at least {}; raise it "
                  "(ulimit -n {}, or LimitNOFILE= in a systemd unit)",
                  limit.rlim_cur, limit.rlim_max, kMinFileDescriptors, kWantedFileDescriptors);
    return false;
}

struct Options {
    uint16_t port = 8000;
    uint16_t tcpPort = 0;  // 0: no TCP
    std::string configPath;  // --config: control-surface mapping (TOML)
    std::string bind = "127.0.0.1";
    std::vector<std::string> allow;
    std::string instance = "default";
    std::string device;
    uint32_t rate = 48000;
    uint32_t frames = 64;
    uint32_t voices = 4;
    double gain = 0.0;
    double rampMs = 10.0;
    std::string layout = "relay";
    bool noStandby = false;
    bool exclusiveDevice = false;
    std::string logLevel = "info";
    bool listDevices = false;
    uint32_t restartLimit = 5;
    double restartWindowS = 10.0;
    int notifyFd = -1;  // -1: none
    bool zeroconf = false;
    std::string zeroconfName;  // empty: "sustain (<instance>)"
    double leaseS = static_cast<double>(Feedback::kDefaultLeaseNs) / 1e9;
    double scheduleHorizonS = static_cast<double>(kDefaultTimedHorizonNs) / 1e9;
    // Several machines (docs/hosts.md)
    std::string role = "local";
    uint16_t hostPort = kDefaultHostPort;
    std::string audioHost;
    std::string netName;
    uint32_t hostLatency = 5;
    uint16_t netPort = 19000;
    uint32_t netLatency = 1;
};

/// A helper binary: the build tree's when this is the build tree's sustaind, else the
/// installed one in libexecdir/sustain, found from sustaind's own place (any prefix).
std::string findBinary(const char* name, const char* buildPath) {
    std::error_code ignored;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ignored);
    if (self.empty()) return "";
    if (std::filesystem::equivalent(self, SUSTAIN_SUPERVISOR_BUILD_PATH, ignored)) return buildPath;
    return (self.parent_path() / SUSTAIN_HELPERS_FROM_BINDIR / name).lexically_normal().string();
}
std::string findWorker() { return findBinary("sustain-worker", SUSTAIN_WORKER_BUILD_PATH); }
std::string findOutput() { return findBinary("sustain-output", SUSTAIN_OUTPUT_BUILD_PATH); }
std::string findHostOutput() { return findBinary("sustain-host-output", SUSTAIN_HOST_OUTPUT_BUILD_PATH); }

int run(const Options& options) {
    blockStopSignals();
    // Before any thread exists: it takes the watchdog variables out of the environment.
    ServiceNotifier notifier(options.notifyFd);

    const bool relay = options.layout == "relay";
    if (relay && options.frames > kMaxRelayFrames) {
        spdlog::error("--frames {}: the relay layout carries periods of at most {} frames", options.frames, kMaxRelayFrames);
        return kExitUsage;
    }

    if (!ensureFileDescriptors()) return kExitSystem;
    const bool audioHost = options.role == "audio";
    // After the limit is known to leave room: each helper is held open (HelperBinary).
    HelperBinary worker;
    HelperBinary output;
    HelperBinary hostOutput;
    std::string helperError;
    if (audioHost && !hostOutput.open(findHostOutput(), helperError)) {
        spdlog::error("cannot start sustain-host-output: {} (sustaind starts it from libexecdir/sustain beside its own "
                      "installation, or from its build tree)", helperError);
        return kExitUnavailable;
    }
    if (!audioHost && (!worker.open(findWorker(), helperError) || !output.open(findOutput(), helperError))) {
        spdlog::error("cannot start sustain-worker and sustain-output: {} (sustaind starts them from libexecdir/sustain "
                      "beside its own installation, or from its build tree)", helperError);
        return kExitUnavailable;
    }
    std::string message;
    ZeroconfOptions zeroconfOptions;
    zeroconfOptions.instance = options.instance;
    zeroconfOptions.name = options.zeroconfName.empty() ? defaultZeroconfName(options.instance) : options.zeroconfName;
    zeroconfOptions.bindAddress = options.bind;
    if (options.zeroconf && !validZeroconfName(zeroconfOptions.name, message)) {
        spdlog::error("{}", message);
        return kExitUsage;
    }

    SegmentOwner owner;
    switch (owner.create(options.instance, message)) {
        case SegmentOwner::Result::Created:
            if (!message.empty()) spdlog::warn("{}", message);
            break;
        case SegmentOwner::Result::AlreadyRunning:
            spdlog::error("{}", message);
            return kExitBusy;
        case SegmentOwner::Result::InvalidName:
            spdlog::error("{}", message);
            return kExitUsage;
        case SegmentOwner::Result::SystemError:
            spdlog::error("{}", message);
            return kExitSystem;
    }
    Segment& segment = owner.segment();
    EngineConfig& config = segment.config;
    config.sampleRate = options.rate;
    config.framesPerBuffer = options.frames;
    config.voices = options.voices;
    config.layout = static_cast<uint32_t>(relay ? OutputLayout::Relay : OutputLayout::Direct);
    config.exclusiveDevice = options.exclusiveDevice ? 1 : 0;
    if (relay && options.exclusiveDevice) {
        spdlog::error("--exclusive-device needs --layout direct (the relay layout has every process open the device)");
        return kExitUsage;
    }
    config.rampSamples = static_cast<uint32_t>(std::lround(options.rampMs * options.rate / 1000.0));
    config.fadeSamples = static_cast<uint32_t>(std::lround(0.005 * options.rate));  // 5 ms
    std::snprintf(config.instance, sizeof config.instance, "%s", options.instance.c_str());
    std::snprintf(config.device, sizeof config.device, "%s", options.device.c_str());
    // Seed the state table: it is the authority every worker starts from.
    for (uint32_t param = 0; param < kParamCount; ++param)
        segment.params.entries[param].value.store(defaultParamValue(param, options.gain), std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);

    CommandRouter router(segment, static_cast<uint64_t>(options.scheduleHorizonS * 1e9));
    OscServerOptions oscOptions;
    oscOptions.leaseNs = static_cast<uint64_t>(options.leaseS * 1e9);
    oscOptions.bindAddress = options.bind;
    oscOptions.port = options.port;
    oscOptions.tcpPort = options.tcpPort;
    if (!options.configPath.empty()) {
        std::optional<Mapping> mapping = Mapping::load(options.configPath, options.voices, options.rate, message);
        if (!mapping) {
            spdlog::error("{}", message);
            return kExitConfig;
        }
        spdlog::info("mapping {}: {} addresses, {} labels, {} ignored patterns", options.configPath,
                     mapping->entries().size(), mapping->labels().size(), mapping->ignoredPatterns());
        oscOptions.mapping = std::make_shared<const Mapping>(std::move(*mapping));
    }
    oscOptions.voices = options.voices;
    oscOptions.sampleRate = options.rate;
    for (const std::string& network : options.allow) {
        if (!oscOptions.allow.add(network, message)) {
            spdlog::error("{}", message);
            return kExitUsage;
        }
    }
    if (options.bind != "127.0.0.1" && options.bind != "::1" && options.allow.empty())
        spdlog::warn("OSC listens on {} and --allow is not given: anyone who can reach it controls the engine",
                     options.bind);
    OscServer osc(segment, router, oscOptions);
    if (!osc.open(message)) {
        spdlog::error("{}", message);
        return osc.portInUse() ? kExitBusy : kExitUsage;
    }

    std::unique_ptr<AudioHost> hosts;
    std::unique_ptr<Supervisor> supervisor;
    if (audioHost) {
        AudioHostOptions hostOptions;
        hostOptions.instance = options.instance;
        hostOptions.bindAddress = options.bind;
        hostOptions.hostPort = options.hostPort;
        hostOptions.allow = oscOptions.allow;
        hostOptions.playoutPeriods = options.hostLatency;
        hostOptions.masterGain = options.gain;
        hostOptions.logLevel = options.logLevel;
        hostOptions.hostOutput = hostOutput;
        hosts = std::make_unique<AudioHost>(segment, router, hostOptions);
        hosts->setServiceNotifier(&notifier);
        notifier.status("starting: the host output stage");
        if (!hosts->start(message)) {
            spdlog::error("cannot start the audio host: {}", message);
            return kExitUnavailable;
        }
    } else {
        SupervisorOptions supervisorOptions;
        supervisorOptions.instance = options.instance;
        supervisorOptions.worker = worker;
        supervisorOptions.output = output;
        supervisorOptions.layout = relay ? OutputLayout::Relay : OutputLayout::Direct;
        supervisorOptions.standby = !options.noStandby;
        supervisorOptions.exclusiveDevice = options.exclusiveDevice;
        supervisorOptions.logLevel = options.logLevel;
        supervisorOptions.restartLimit = options.restartLimit;
        supervisorOptions.restartWindowS = options.restartWindowS;
#if defined(__SANITIZE_THREAD__)
        // ThreadSanitizer stops threads for tens of milliseconds now and then (its shadow
        // bookkeeping), on this kind of machine sometimes for more than 300 ms; at 12 cycles
        // (16 ms) healthy workers would be fenced as hung. A TSan build looks for races, not
        // for timing: hangs count after 40 times as many cycles.
        supervisorOptions.hangCycles *= 40;
        supervisorOptions.controlHangCycles *= 40;
        spdlog::info("ThreadSanitizer build: hangs count after {} cycles", supervisorOptions.hangCycles);
#endif
        supervisor = std::make_unique<Supervisor>(segment, router, supervisorOptions);
        supervisor->setServiceNotifier(&notifier);
        notifier.status("starting: opening the audio device");
        if (!supervisor->start(message)) {
            spdlog::error("cannot start the engine: {}", message);
            notifier.status("cannot start the engine: " + message);
            return kExitUnavailable;
        }
    }
    osc.start();
    // After the OSC thread runs: whoever finds the engine can control it.
    zeroconfOptions.udpPort = osc.boundPort();
    zeroconfOptions.tcpPort = osc.tcpPort();
    ZeroconfAdvertiser zeroconf(zeroconfOptions);
    if (options.zeroconf && !zeroconf.start(message))
        spdlog::warn("{}: not advertised; the engine runs anyway", message);
    const std::string tcp = osc.tcpPort() != 0 ? fmt::format(" and tcp {}:{}", options.bind, osc.tcpPort()) : "";
    spdlog::info("sustain ready: instance \"{}\", OSC on udp {}:{}{}, playing on {}, {} Hz, {} frames, {} voices, "
                 "{}{}, master gain {}{}",
                 options.instance, options.bind, osc.boundPort(), tcp,
                 audioHost ? segment.outputs[0].deviceName : segment.slots[0].deviceName, options.rate, options.frames,
                 options.voices, audioHost ? "audio host of render hosts" : options.layout + " layout",
                 options.noStandby ? " without standby" : "", options.gain,
                 options.gain == 0.0 ? " (send /engine/gain to hear it)" : "");
    if (!options.configPath.empty() && supervisor) {
        supervisor->setReloadHandler([&] {
            std::string error;
            std::optional<Mapping> mapping = Mapping::load(options.configPath, options.voices, options.rate, error);
            if (!mapping) {
                spdlog::error("SIGHUP: {}; the previous mapping stays in force", error);
                return;
            }
            spdlog::info("SIGHUP: mapping {} reloaded: {} addresses, {} labels, {} ignored patterns",
                         options.configPath, mapping->entries().size(), mapping->labels().size(),
                         mapping->ignoredPatterns());
            osc.setMapping(std::make_shared<const Mapping>(std::move(*mapping)));
        });
    }
    const int code = audioHost ? hosts->run() : supervisor->run();
    zeroconf.stop();
    osc.stop();
    owner.remove();
    spdlog::info("stopped; shared memory removed");
    return code;
}

}  // namespace
}  // namespace sustain

int main(int argc, char** argv) {
    sustain::installFaultPoints();  // test builds: tools/chaos arms points with a signal (shm/fault_point.h)
    sustain::Options options;
    CLI::App app{"sustaind: the sustain audio engine (OSC in, sound out)"};
    app.set_version_flag("--version", std::string("sustaind ") + SUSTAIN_VERSION);
    app.add_option("--port", options.port, "UDP port for OSC")->capture_default_str();
    app.add_option("--config", options.configPath,
                   "control-surface mapping (TOML, docs/mapping.md; examples/touchosc.toml); re-read on SIGHUP");
    app.add_option("--tcp-port", options.tcpPort,
                   "also receive OSC over TCP on this port (OSC 1.0 length-prefix or 1.1 SLIP framing, told apart "
                   "by the first byte; off unless given)");
    app.add_option("--bind", options.bind, "address to receive OSC on (0.0.0.0 for every interface)")
        ->capture_default_str();
    app.add_option("--allow", options.allow, "address or network (CIDR) that may send OSC; repeatable "
                                             "(default: whoever can reach --bind)");
    app.add_option("--lease", options.leaseS,
                   "seconds of silence after which a client's subscription, control surface or TCP connection is "
                   "forgotten (any message renews it; docs/clients.md)")
        ->check(CLI::Range(0.5, 86400.0))
        ->capture_default_str();
    app.add_option("--schedule-horizon", options.scheduleHorizonS,
                   "seconds ahead beyond which timed bundles are refused (a wrong clock, not a sequence)")
        ->check(CLI::Range(0.1, 86400.0))
        ->capture_default_str();
    app.add_option("--instance", options.instance, "engine instance name (letters, digits, _ and -)")
        ->capture_default_str();
    app.add_option("--device", options.device, "output device (name or part of it; default: JACK if running, "
                                               "else the system default)");
    app.add_option("--rate", options.rate, "sample rate in Hz")->check(CLI::Range(8000u, 192000u))->capture_default_str();
    app.add_option("--frames", options.frames, "frames per period")->check(CLI::Range(16u, 4096u))->capture_default_str();
    app.add_option("--voices", options.voices, "number of sine voices")
        ->check(CLI::Range(1u, sustain::kMaxVoices))
        ->capture_default_str();
    app.add_option("--gain", options.gain, "master gain at start, linear 0..1")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--ramp-ms", options.rampMs, "length of every parameter ramp (smoothing), ms")
        ->check(CLI::Range(0.5, 1000.0))
        ->capture_default_str();
    app.add_option("--layout", options.layout,
                   "relay: workers out of the mix, an output stage plays (zero damaged samples on a fault, "
                   "one period of latency); direct: the active worker plays (no added latency)")
        ->check(CLI::IsMember({"relay", "direct"}))
        ->capture_default_str();
    app.add_flag("--no-standby", options.noStandby, "run without a standby worker (a crash is then an audible gap)");
    app.add_flag("--exclusive-device", options.exclusiveDevice,
                 "with --layout direct: for a device one process must own (raw ALSA hw); the standby opens it "
                 "only once the active has gone (a gap of about one stream start per fault)");
    app.add_option("--restart-limit", options.restartLimit, "crashes tolerated within --restart-window before backing off")
        ->capture_default_str();
    app.add_option("--restart-window", options.restartWindowS, "seconds")->capture_default_str();
    app.add_option("--log-level", options.logLevel, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
        ->capture_default_str();
    app.add_flag("--list-devices", options.listDevices, "list output devices, check the automatic choice plays, exit");
    CLI::Option* notifyFd =
        app.add_option("--notify-fd", options.notifyFd,
                       "write a newline to this file descriptor once the engine plays with a warm spare, then close "
                       "it (s6-style readiness; systemd's Type=notify needs no flag)");
    CLI::Option* zeroconf = app.add_flag("--zeroconf", options.zeroconf,
                                         "advertise the OSC port with Zeroconf (_osc._udp) through avahi-daemon");
    app.add_option("--zeroconf-name", options.zeroconfName,
                   "Zeroconf service name (default: \"sustain (<instance>)\"; renamed \"... #2\" if taken)")
        ->needs(zeroconf);
    app.add_option("--role", options.role,
                   "local: the whole engine on this machine; audio: the audio host of render hosts on other machines "
                   "(netjack2; docs/hosts.md); render: a render host of --audio-host")
        ->check(CLI::IsMember({"local", "audio", "render"}))
        ->capture_default_str();
    app.add_option("--host-port", options.hostPort, "--role audio/render: TCP port of the audio host's link to its "
                                                    "render hosts (on --bind; render hosts must be in --allow)")
        ->capture_default_str();
    app.add_option("--audio-host", options.audioHost, "--role render: address of the audio host");
    app.add_option("--net-name", options.netName,
                   "--role render: this host's netjack2 client name on the audio host (jackd -d net -n NAME)");
    app.add_option("--net-port", options.netPort, "--role render: UDP port of the audio host's netmanager")
        ->capture_default_str();
    app.add_option("--net-latency", options.netLatency,
                   "--role render: netjack2's network latency in periods (jackd -d net -l)")
        ->check(CLI::Range(0u, 10u))
        ->capture_default_str();
    app.add_option("--host-latency", options.hostLatency,
                   "--role audio: blocks are asked of the render hosts this many periods before they are played "
                   "(at least netjack2's network latency + 1; docs/hosts.md)")
        ->check(CLI::Range(1u, 30u))
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        // CLI11 prints the message (or --help); its own codes (105-109) mean nothing to a
        // service manager: a wrong command line is EX_USAGE.
        const int code = app.exit(error);
        return code == 0 ? 0 : sustain::kExitUsage;
    }

    if (options.listDevices) {
        const std::string worker = sustain::findWorker();
        std::vector<std::string> args = {worker, "--list-devices", "--rate", std::to_string(options.rate), "--frames",
                                         std::to_string(options.frames)};
        if (!options.device.empty()) {
            args.emplace_back("--device");
            args.push_back(options.device);
        }
        std::vector<char*> argvWorker;
        argvWorker.reserve(args.size() + 1);
        for (std::string& arg : args) argvWorker.push_back(arg.data());
        argvWorker.push_back(nullptr);
        execv(worker.c_str(), argvWorker.data());
        std::fprintf(stderr, "cannot run %s: %s\n", worker.c_str(), std::strerror(errno));
        return sustain::kExitUnavailable;
    }
    sustain::setupProcessLogging(options.instance + "/sustaind", options.logLevel);
    if (options.role == "render") {
        if (options.audioHost.empty() || options.netName.empty()) {
            spdlog::error("--role render needs --audio-host ADDRESS and --net-name NAME (docs/hosts.md)");
            return sustain::kExitUsage;
        }
        sustain::blockStopSignals();
        sustain::RenderHostOptions renderOptions;
        renderOptions.audioHost = options.audioHost;
        renderOptions.hostPort = options.hostPort;
        renderOptions.netName = options.netName;
        renderOptions.instance = options.instance;
        renderOptions.netPort = options.netPort;
        renderOptions.netLatency = options.netLatency;
        return sustain::runRenderHost(renderOptions);
    }
    std::string error;
    if (*notifyFd && !sustain::ServiceNotifier::checkNotifyFd(options.notifyFd, error)) {
        spdlog::error("{}", error);
        return sustain::kExitUsage;
    }
    return sustain::run(options);
}
