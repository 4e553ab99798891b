// sustaind's exit statuses: after sysexits.h, so that a service manager can tell a mistake
// that restarting cannot fix from a condition that may pass.
#pragma once

#include <sysexits.h>

namespace sustain {

/// 0: stopped on request. 1: the engine ran and failed (restart it). The rest, after
/// sysexits.h; examples/sustaind.service does not restart on EX_USAGE or EX_CONFIG:
/// - EX_USAGE (64): a flag or its value is wrong (unknown flag, --bind not an address,
///   --frames too large for the relay layout, --allow malformed, a bad instance name);
/// - EX_UNAVAILABLE (69): a part the engine needs is missing: the audio device could not be
///   opened, sustain-worker or sustain-output is not installed;
/// - EX_OSERR (71): the system refused something it normally gives (file descriptors,
///   shared memory);
/// - EX_TEMPFAIL (75): busy, may pass: the instance already runs, the OSC port is taken;
/// - EX_CONFIG (78): the configuration file (--config) is wrong.
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = EX_USAGE;
inline constexpr int kExitUnavailable = EX_UNAVAILABLE;
inline constexpr int kExitSystem = EX_OSERR;
inline constexpr int kExitBusy = EX_TEMPFAIL;
inline constexpr int kExitConfig = EX_CONFIG;

}  // namespace sustain
