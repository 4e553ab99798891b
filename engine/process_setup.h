// What every child process of sustaind (workers and output stages) does to start and to
// open its audio stream.
#pragma once

#include <jack/jack.h>
#include <portaudio.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdint>
#include <string>

#include "engine/audio_device.h"
#include "engine/rt/callback_timing.h"
#include "engine/rt/stale_buffer.h"
#include "shm/layout.h"

namespace sustain {

/// What sustaind tells every child on its command line.
struct ChildOptions {
    std::string instance = "default";
    uint32_t slot = 0;
    int wakeFd = -1;
    int supervisorPid = 0;
    std::string logLevel = "info";
};

/// Declares --instance, --slot, --wake-fd, --supervisor-pid and --log-level.
void addChildOptions(CLI::App& app, ChildOptions& options);

/// Logs to stderr as "[INSTANCE/ROLE SLOT]" (without SLOT: "[INSTANCE/ROLE]") at the
/// given level. Thread: main.
void setupChildLogging(const char* role, const ChildOptions& options, bool withSlot = true);

/// Dies with sustaind (PR_SET_PDEATHSIG) and refuses to start if it is already gone;
/// restores default dispositions for SIGINT/SIGTERM (a shell may have ignored them) and
/// blocks them before any thread exists, so that PortAudio's and JACK's threads inherit the
/// mask. Returns a signalfd for SIGINT and SIGTERM, or -1 if sustaind is gone.
/// Thread: main, first thing.  RT-safe: no.
int enterChildProcess(int supervisorPid);

/// Locks memory so that the audio thread never waits for a page fault (mlockall is not
/// inherited across exec); warns when not permitted. Thread: main.
void lockMemory();

struct OpenedStream {
    PaStream* stream = nullptr;
    DeviceChoice device;
    WorkerExit failure = WorkerExit::None;  // NoDevice or StreamFailed when stream is null
    uint32_t outputLatencyFrames = 0;       // as PortAudio reports it for the running stream
};

/// Whether the stream plays through JACK (then the frame clock can be JACK's own).
bool playsThroughJack(const OpenedStream& opened);

/// Opens a JACK client that is never activated: the worker reads the server's cycle timer
/// through it (jack_get_cycle_times). Null when the server cannot be reached. Thread: main.
jack_client_t* openJackClock(const std::string& clientName);

/// JACK's clock (jack_get_time) minus CLOCK_MONOTONIC, in ns: they are different clocks.
/// The smallest of a few readings. Thread: any but the audio thread.
int64_t jackMinusMonotonicNs();

/// Publishes how long a rendered frame takes to reach the listener, for timed bundles:
/// the stream's reported output latency plus `extraFrames` (the relay's one period).
/// Every process that may play writes the same value. Thread: main.
void publishPlayLatency(Segment& segment, uint32_t outputLatencyFrames, uint32_t extraFrames);

/// Initialises PortAudio with the JACK client name `clientName`, chooses the device of the
/// engine's config, opens a float32 output stream at the config's rate and period with
/// `callback`, and starts it; `channels` (read by the callback) is set to the stream's
/// channel count before the start; with `inputChannels`, the stream also records that many
/// channels of the same device. Logs what failed, with the fix.  Thread: main.
OpenedStream openAndStartStream(const EngineConfig& config, const std::string& clientName, PaStreamCallback* callback,
                                void* userData, int channelsWanted, uint32_t& channels, int inputChannels = 0);

/// Waits up to 5 s for the callback to run once (`blocks` > 0). Thread: main.
bool waitForFirstCallback(const std::atomic<uint64_t>& blocks);

/// Confines the audio thread to the `slot`-th CPU this process may use, when it may use two
/// or more: slot s's worker and output stage share CPU s, so that a CPU the machine leaves
/// unrun for a while (a virtual machine's host, cpu_progress.h) holds up one slot's audio
/// only and the other slot's output stage and worker play on; the scheduler alone may queue
/// both slots' audio threads on that one CPU. Only the audio thread: the main and control
/// threads go where the scheduler puts them, so that one that loops starves no other.
/// Thread: main, once the callback has run.
void confineAudioThread(const AudioThread& audio, uint32_t slot, const char* what);

/// Stops and closes the stream and terminates PortAudio. Thread: main.
void closeStream(PaStream* stream);

/// True when a stream that was playing stopped on its own: the device went away (unplugged,
/// or the JACK server stopped; PortAudio marks its streams inactive then). Logs it once.
/// The caller then calls exitDeviceLost. Thread: main.
bool streamLost(PaStream* stream);

/// Records WorkerExit::DeviceLost in `slot` and ends the process at once (sustaind waits for
/// the device to return). The stream is not closed (stopping one whose server is gone can
/// block for seconds) and no destructor runs, so nothing the callback might still touch is
/// freed under it; buffered output (logs, the trace) is flushed first. Thread: main.
[[noreturn]] void exitDeviceLost(WorkerSlot& slot);

/// Whether the JACK server mixes a dead client's last port buffers again, from memory another
/// client can zero: JACK2 does (so silenceStale is needed and works there). PipeWire's JACK
/// does not: it mixes a client's buffer only for a cycle that client produced it, hands out
/// another client's output buffer only to a client whose input is connected to it (null
/// otherwise), and its jack_port_connected takes a lock, which no callback may wait on.
/// Under it no peer port is looked up, so silenceStale has nothing to call JACK for.
/// Thread: any.  RT-safe: no (the first call reads the library's version).
bool jackMixesStaleBuffers();

/// Looks up the JACK ports (`client`:out_0, out_1) of the process now in `peer` whenever a
/// new process holds that slot, for the audio thread to watch should that process die while
/// it plays (silenceStale, engine/rt/stale_buffer.h). Ports first, then the pid they belong
/// to (release). Only once that process runs (warm or active): its stream, and so its
/// client, exists then. Workers' clients have names of their own (workerClientName); an
/// output stage's dead predecessor of the same name is long gone by then (JACK drops it
/// within 20 ms; a new process takes longer than that to start).
/// Thread: a non-real-time thread (jack_port_by_name reads the server's shared memory).
void lookUpPeerPorts(StaleBuffer& stale, const WorkerSlot& peer, jack_client_t* jackClock, const std::string& client);

}  // namespace sustain
