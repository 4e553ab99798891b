// sustain-status: the engine's health at a glance. Reads the engine's shared memory
// read-only; exit code 0 healthy, 1 degraded, 2 down (or no engine).
//
//   sustain-status                  live view (on a terminal), q quits
//   sustain-status --once           one plain-text report
//   sustain-status --json --once    one JSON object (fields as in DESIGN.md)
#include <unistd.h>

#include "sustain_features.h"
#if SUSTAIN_HAVE_LIVE_VIEW
#include <ncurses.h>
#endif

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "shm/clock.h"
#include "shm/segment.h"
#include "tools/status/status_format.h"
#include "tools/status/status_snapshot.h"
#include "sustain_version.h"

namespace sustain {
namespace {

struct Options {
    std::string instance = "default";
    bool json = false;
    bool once = false;
    double interval = 0.2;
};

int reportNoEngine(const Options& options, AttachError error, const std::string& detail) {
    const std::string text = describe(error, options.instance, detail);
    if (options.json) {
        std::printf("%s\n", nlohmann::json({{"instance", options.instance}, {"health", "down"}, {"health_reason", text}}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
        std::fprintf(stderr, "%s\n", text.c_str());
    }
    return static_cast<int>(Health::Down);
}

int once(const Options& options) {
    MappedSegment mapping;
    std::string detail;
    const AttachError error = attachSegment(options.instance, true, mapping, &detail);
    if (error != AttachError::None) return reportNoEngine(options, error, detail);
    const StatusSnapshot snapshot = takeSnapshot(mapping.get(), monotonicNs());
    std::string why;
    const Health health = healthOf(snapshot, why);
    if (options.json)
        // Strings come from shared memory: never trust them to be UTF-8.
        std::printf("%s\n", statusJson(snapshot, health, why).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    else
        std::fputs(statusText(snapshot, health, why).c_str(), stdout);
    return static_cast<int>(health);
}

/// Rates between two snapshots, per second.
#if SUSTAIN_HAVE_LIVE_VIEW
double rate(uint64_t now, uint64_t before, double seconds) {
    return seconds > 0 && now >= before ? static_cast<double>(now - before) / seconds : 0.0;
}

void drawLive(const StatusSnapshot& s, const StatusSnapshot& previous, Health health, const std::string& why) {
    erase();
    const int colour = health == Health::Healthy ? 1 : health == Health::Degraded ? 2 : 3;
    const double dt = static_cast<double>(s.nowNs - previous.nowNs) / 1e9;
    int row = 0;
    attron(A_BOLD);
    mvprintw(row, 0, "sustain \"%s\"  ", s.instance.c_str());
    attron(COLOR_PAIR(colour));
    printw("%s", healthWord(health));
    attroff(COLOR_PAIR(colour));
    attroff(A_BOLD);
    if (!why.empty()) printw("  %s", why.c_str());
    mvprintw(++row, 0, "uptime %.0f s   %u Hz   %u frames (%.2f ms)   %s layout   sustaind pid %d", s.uptimeS, s.sampleRate,
             s.framesPerBuffer, s.sampleRate ? 1000.0 * s.framesPerBuffer / s.sampleRate : 0.0, s.layout.c_str(), s.supervisorPid);
    row += 2;
    attron(A_BOLD);
    mvprintw(row, 0, "%-7s %-4s %-8s %-15s %-9s %8s %8s %7s %14s", "PROCESS", "SLOT", "PID", "ROLE", "STATE", "LOAD %", "PEAK %",
             "XRUNS", "HEARTBEAT AGE");
    attroff(A_BOLD);
    for (const ProcessStatus& p : s.processes) {
        const bool stale = p.pid != 0 && (p.heartbeatAgeMs < 0 || p.heartbeatAgeMs > 50);
        if (stale) attron(COLOR_PAIR(3));
        mvprintw(++row, 0, "%-7s %-4u %-8d %-15s %-9s %8.1f %8.1f %7llu %11.1f ms", p.kind.c_str(), p.slot, p.pid, p.role.c_str(),
                 p.state.c_str(), p.cpuLoad * 100.0, p.cpuLoadPeak * 100.0, static_cast<unsigned long long>(p.xruns),
                 p.heartbeatAgeMs);
        if (stale) attroff(COLOR_PAIR(3));
    }
    if (!s.hosts.empty()) {  // the audio host's render hosts (docs/hosts.md)
        row += 2;
        attron(A_BOLD);
        mvprintw(row, 0, "%-5s %-14s %-22s %-8s %-8s %10s %8s %8s %9s", "HOST", "NAME", "ADDRESS", "ROLE", "STATE",
                 "BLOCKS", "LATE", "LATENCY", "REPEATED");
        attroff(A_BOLD);
        for (const HostStatus& h : s.hosts) {
            if (h.state != "in_step") attron(COLOR_PAIR(3));
            mvprintw(++row, 0, "%-5u %-14s %-22s %-8s %-8s %10llu %8llu %5u cy %9llu", h.row, h.name.c_str(),
                     h.address.c_str(), h.role.c_str(), h.state.c_str(), static_cast<unsigned long long>(h.blocks),
                     static_cast<unsigned long long>(h.lateBlocks), h.latencyCycles,
                     static_cast<unsigned long long>(h.recoveredBlocks));
            if (h.state != "in_step") attroff(COLOR_PAIR(3));
        }
    }
    row += 2;
    mvprintw(row, 0, "supervisor  crashes %llu  replacements %llu  failovers %llu  spare %s  output spare %s%s",
             static_cast<unsigned long long>(s.crashCount), static_cast<unsigned long long>(s.replacements),
             static_cast<unsigned long long>(s.failovers), s.spareReady ? "ready" : "NOT READY",
             s.outputSpareReady ? "ready" : "no", s.backingOff ? "  BACKING OFF" : "");
    mvprintw(++row, 0, "            failover %.3f ms (max %.3f)   rebuild %.1f ms (max %.1f)   shm leaks %llu",
             s.failoverMsLast, s.failoverMsMax, s.rebuildMsLast, s.rebuildMsMax, static_cast<unsigned long long>(s.shmLeaks));
    row += 2;
    mvprintw(row, 0, "osc         received %llu (%.0f/s)  applied %llu (%.0f/s)  rejected %llu  dropped %llu  coalesced %llu",
             static_cast<unsigned long long>(s.received), rate(s.received, previous.received, dt),
             static_cast<unsigned long long>(s.applied), rate(s.applied, previous.applied, dt),
             static_cast<unsigned long long>(s.rejected), static_cast<unsigned long long>(s.dropped),
             static_cast<unsigned long long>(s.coalesced));
    mvprintw(++row, 0, "clients     subscribers %llu  surfaces %llu  tcp %llu   left: unreachable %llu  lease %llu  "
                       "evicted %llu  send failed %llu  unsubscribed %llu",
             static_cast<unsigned long long>(s.subscribersNow), static_cast<unsigned long long>(s.surfacesNow),
             static_cast<unsigned long long>(s.tcpConnections), static_cast<unsigned long long>(s.leftUnreachable),
             static_cast<unsigned long long>(s.leftLeaseExpired), static_cast<unsigned long long>(s.leftEvicted),
             static_cast<unsigned long long>(s.subscribersDropped), static_cast<unsigned long long>(s.leftUnsubscribed));
    mvprintw(++row, 0, "timed       waiting %llu  refused: too far ahead %llu  sender's share %llu  schedule full %llu",
             static_cast<unsigned long long>(s.timedPending), static_cast<unsigned long long>(s.rejectedTooFarAhead),
             static_cast<unsigned long long>(s.rejectedSenderQuota), static_cast<unsigned long long>(s.rejectedScheduleFull));
    const double ms = s.sampleRate ? 1000.0 / s.sampleRate : 0.0;
    mvprintw(++row, 0, "latency     p50 %.0f  p95 %.0f  p99 %.0f  max %.0f samples   (p99 %.2f ms)   ", s.latencySamples.p50,
             s.latencySamples.p95, s.latencySamples.p99, s.latencySamples.max, s.latencySamples.p99 * ms);
    // A sparkline of the latency histogram, 16 samples per character (ASCII: any terminal).
    static const char* levels[] = {" ", ".", ":", "-", "=", "+", "*", "#", "@"};
    uint64_t top = 1;
    for (uint64_t b : s.latencyBins) top = std::max(top, b);
    for (uint64_t b : s.latencyBins) printw("%s", levels[b == 0 ? 0 : 1 + (b * 7) / top]);
    row += 2;
    mvprintw(row, 0, "params      master gain %.3f", s.masterGain);
    for (size_t v = 0; v < s.voiceFreq.size(); ++v)
        mvprintw(++row, 0, "            voice %zu  %9.2f Hz  gain %.3f", v, s.voiceFreq[v], s.voiceGain[v]);
    mvprintw(++row + 1, 0, "q quits");
    refresh();
}

int live(const Options& options) {
    if (isatty(STDOUT_FILENO) == 0) return once(options);
    initscr();
    cbreak();
    noecho();
    curs_set(0);
    nodelay(stdscr, TRUE);
    keypad(stdscr, TRUE);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(1, COLOR_GREEN, -1);
        init_pair(2, COLOR_YELLOW, -1);
        init_pair(3, COLOR_RED, -1);
    }
    StatusSnapshot previous;
    Health health = Health::Down;
    for (;;) {
        const int key = getch();
        if (key == 'q' || key == 'Q') break;
        MappedSegment mapping;
        std::string detail;
        const AttachError error = attachSegment(options.instance, true, mapping, &detail);
        if (error != AttachError::None) {
            erase();
            attron(COLOR_PAIR(3));
            mvprintw(0, 0, "%s", describe(error, options.instance, detail).c_str());
            attroff(COLOR_PAIR(3));
            mvprintw(2, 0, "q quits");
            refresh();
            health = Health::Down;
        } else {
            const StatusSnapshot snapshot = takeSnapshot(mapping.get(), monotonicNs());
            std::string why;
            health = healthOf(snapshot, why);
            drawLive(snapshot, previous.nowNs != 0 ? previous : snapshot, health, why);
            previous = snapshot;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(options.interval * 1000)));
    }
    endwin();
    return static_cast<int>(health);
}
#else
// Built without ncurses (meson -Dlive_view=disabled): the plain report, once.
int live(const Options& options) {
    std::fprintf(stderr, "sustain-status: built without the live view (meson -Dlive_view=disabled): reporting once\n");
    return once(options);
}
#endif

}  // namespace
}  // namespace sustain

int main(int argc, char** argv) {
    sustain::Options options;
    CLI::App app{"sustain-status: the health of a running sustain engine (exit code 0 healthy, 1 degraded, 2 down)"};
    app.set_version_flag("--version", std::string("sustain-status ") + SUSTAIN_VERSION);
    app.add_option("--instance", options.instance, "engine instance")->capture_default_str();
    app.add_flag("--json", options.json, "print one JSON object (with --once)");
    app.add_flag("--once", options.once, "print once and exit (default on a terminal: a live view; q quits)");
    app.add_option("--interval", options.interval, "live view refresh, seconds")->check(CLI::Range(0.05, 10.0))->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    if (options.json || options.once) return sustain::once(options);
    return sustain::live(options);
}
