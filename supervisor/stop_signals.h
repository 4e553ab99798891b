// The signals that stop (SIGINT, SIGTERM) or reload (SIGHUP) sustaind, whatever its role.
#pragma once

namespace sustain {

/// A shell starts background jobs with SIGINT ignored, and an ignored signal never reaches a
/// signalfd: restores the defaults first, then blocks SIGINT, SIGTERM, SIGHUP and SIGPIPE
/// before any thread exists, so that only the main loop's signalfd sees them.
/// Thread: main, first thing.
void blockStopSignals();

/// A non-blocking signalfd for SIGINT, SIGTERM and SIGHUP (blocked by blockStopSignals()),
/// or -1. Thread: main.
int openStopSignalFd();

}  // namespace sustain
