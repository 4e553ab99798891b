// One child process of sustaind: spawn, watch, stop.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sustain {

/// How a child ended, in words a user understands.
struct ChildExit {
    bool exited = false;   // true: `code` is the exit code; false: killed by `signal`
    int code = 0;
    int signal = 0;
    std::string describe() const;
};

/// A binary sustaind starts (sustain-worker, sustain-output) as it was when sustaind started:
/// held open, so that every process started later runs that same file, also after a package
/// upgrade has replaced it (the new version's shared-memory layout may differ from this
/// sustaind's; the new one runs from the next start of sustaind).
struct HelperBinary {
    std::string path;  // for messages, and the child's argv[0]
    int fd = -1;       // O_PATH, close-on-exec, 10 or above; open for sustaind's lifetime

    /// Opens `path`. Thread: main.  Errors: false with `error` saying why.
    bool open(const std::string& file, std::string& error);
};

/// A worker process and the two things that tell sustaind it died: a pidfd (exit status,
/// no PID-reuse race) and the parent's end of a socketpair (EOF when the kernel has torn
/// the child down; also the channel for wake bytes).
class WorkerProcess {
public:
    WorkerProcess() = default;
    WorkerProcess(const WorkerProcess&) = delete;
    WorkerProcess& operator=(const WorkerProcess&) = delete;
    /// Takes over `other`'s child and descriptors; `other` is left empty. Thread: main.
    WorkerProcess& operator=(WorkerProcess&& other) noexcept;
    ~WorkerProcess();

    /// Forks and execs `binary` with `args`, the child's end of the socketpair as fd 3.
    /// The child gets its own process group (a terminal's Ctrl-C goes to sustaind, which
    /// fades out properly) and PR_SET_PDEATHSIG, so it never outlives sustaind.
    /// Thread: sustaind's main thread only (PDEATHSIG follows the forking thread).
    /// Errors: false with `error` set (fork, socketpair or pidfd_open failed).
    bool spawn(const HelperBinary& binary, const std::vector<std::string>& args, std::string& error);

    /// Reaps the child if it has exited; true once reaped (then `exit()` is valid).
    /// Thread: main.
    bool tryReap();

    /// SIGKILLs the child (if still running) and reaps it, waiting at most `timeoutMs`.
    /// Returns whether it was reaped: a thread in an uninterruptible wait (state D: a hung
    /// disk or driver, a frozen cgroup) holds the whole process until the kernel lets it
    /// go; tryReap() says when. Thread: main.
    bool killAndReap(int timeoutMs = kReapTimeoutMs);

    /// How long killAndReap() waits by default: tearing down a process with locked memory
    /// and a JACK client takes milliseconds; one that takes seconds is stuck in the kernel.
    static constexpr int kReapTimeoutMs = 2000;

    /// Closes the descriptors of a reaped child. Thread: main.
    void release();

    /// Whether the child is stopped by a signal (SIGSTOP, SIGTSTP: state T in
    /// /proc/<pid>/stat). A process being traced (state t) is not counted. Thread: main.
    bool stopped() const;

    /// The child's audio thread: the thread with the highest real-time priority (JACK's
    /// process thread; the control thread runs below it). 0 if none is real-time. Thread: main.
    pid_t audioThread() const;

    /// The CPU thread `tid` of the child last ran on or waits to run on (-1 if unknown).
    /// Thread: main.
    int threadCpu(pid_t tid) const;

    /// CPU time thread `tid` of the child has used so far, in ns (0 if unknown). Thread: main.
    uint64_t threadCpuNs(pid_t tid) const;

    bool running() const { return pid_ > 0 && !reaped_; }
    pid_t pid() const { return pid_; }
    int pidFd() const { return pidFd_; }
    int wakeFd() const { return wakeFd_; }
    const ChildExit& exit() const { return exit_; }

private:
    void kill();  // SIGKILL, without waiting

    pid_t pid_ = -1;
    int pidFd_ = -1;
    int wakeFd_ = -1;
    bool reaped_ = false;
    ChildExit exit_;
};

}  // namespace sustain
