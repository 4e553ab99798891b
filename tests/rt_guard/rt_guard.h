// Query side of the real-time guard (librtguard.so, tests only).
//
// The guard is loaded with LD_PRELOAD. It defines the hooks that engine/rt/rt_guard_hooks.h
// declares (sustain_rt_guard_enter/leave) and interposes malloc, locks, sleeps, I/O and
// exceptions: a call made on a thread while that thread is between enter and leave is a
// violation, counted per function and then forwarded unchanged.
//
// Everything here is declared weak for the same reason as the hooks: a binary built with
// this header still starts without the guard, and then every function below is nullptr.
// A test that relies on the guard must check that first and fail, never pass vacuously.
//
// Counting rules (what a number in the report means):
// - Only the outermost interposed call is counted: fopen() inside the region counts one
//   "fopen", not also the malloc() fopen makes; operator new counts as "malloc" because it
//   is not interposed itself.
// - Counting never allocates or locks: one relaxed atomic increment in a fixed table.
// - After fork() the child starts from zero (its report covers only its own calls).
//
// Report: when SUSTAIN_RT_GUARD_REPORT names an existing directory, the guard writes
// <dir>/rtguard.<pid>.json at normal process exit (exit() or return from main; not after
// _exit(), abort() or a fatal signal) and whenever sustain_rt_guard_report() is called.
// One line of JSON, written to a temporary file and renamed, so a reader never sees half:
//   {"pid":123,"exe":"/path/to/exe","guarded_calls":4800,"unbalanced_leaves":0,
//    "violations":{"malloc":0,"calloc":0,...every interposed function...},"total":0}
// guarded_calls counts sustain_rt_guard_enter() calls (nested ones included); total is the
// sum of the violations listed. LD_PRELOAD is inherited, so every child process that
// starts with it writes its own file, even when it never entered the region.
#pragma once

#if defined(SUSTAIN_RT_GUARD_BUILDING)
// The guard itself defines these: strong definitions, exported from a hidden-by-default .so.
#define SUSTAIN_RT_GUARD_API __attribute__((visibility("default")))
#else
#define SUSTAIN_RT_GUARD_API __attribute__((weak))
#endif

extern "C" {

/// Violations counted so far in this process, summed over all functions.
/// Thread: any.  RT-safe: yes (relaxed atomic loads; may be stale against other threads).
SUSTAIN_RT_GUARD_API unsigned long long sustain_rt_guard_violations(void);

/// Number of sustain_rt_guard_enter() calls so far in this process, nested ones included.
/// Thread: any.  RT-safe: yes.
SUSTAIN_RT_GUARD_API unsigned long long sustain_rt_guard_entries(void);

/// Violations counted so far for one interposed function, by its C name ("malloc",
/// "pthread_mutex_lock", "__cxa_throw", ...). Thread: any.  RT-safe: yes.
/// Errors: returns ~0ULL for a name the guard does not interpose, so a typo in a test
/// fails loudly instead of reading as "no violations".
SUSTAIN_RT_GUARD_API unsigned long long sustain_rt_guard_count(const char* function);

/// Writes <dir>/rtguard.<pid>.json now (see the report format above). Calls it makes are
/// never counted, even from inside the region or while other threads are inside theirs.
/// Thread: any.  RT-safe: no (opens, writes and renames a file).
/// Returns 0 when written, 1 when SUSTAIN_RT_GUARD_REPORT is unset or empty, -1 when the
/// file could not be written (errno tells why).
SUSTAIN_RT_GUARD_API int sustain_rt_guard_report(void);

}  // extern "C"
