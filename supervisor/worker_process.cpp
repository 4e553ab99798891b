#include "supervisor/worker_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace sustain {

namespace {
// Called through syscall(): Debian 12's <sys/pidfd.h> lacks C linkage for C++.
int openPidFd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
int signalPidFd(int pidFd, int signal) { return static_cast<int>(syscall(SYS_pidfd_send_signal, pidFd, signal, nullptr, 0)); }
}  // namespace

std::string ChildExit::describe() const {
    if (exited) return "exited with code " + std::to_string(code);
    const char* name = sigabbrev_np(signal);
    return "killed by signal " + std::to_string(signal) + (name != nullptr ? std::string(" (SIG") + name + ")" : "");
}

WorkerProcess::~WorkerProcess() {
    if (running()) killAndReap();
    release();
}

WorkerProcess& WorkerProcess::operator=(WorkerProcess&& other) noexcept {
    if (this == &other) return *this;
    release();
    pid_ = other.pid_;
    pidFd_ = other.pidFd_;
    wakeFd_ = other.wakeFd_;
    reaped_ = other.reaped_;
    exit_ = other.exit_;
    other.pid_ = -1;
    other.pidFd_ = -1;
    other.wakeFd_ = -1;
    other.reaped_ = false;
    return *this;
}

bool HelperBinary::open(const std::string& file, std::string& error) {
    const int opened = ::open(file.c_str(), O_PATH | O_CLOEXEC);
    if (opened < 0 || access(file.c_str(), X_OK) != 0) {
        error = file + ": " + std::strerror(errno);
        if (opened >= 0) close(opened);
        return false;
    }
    // Above the descriptors a child is given (0-3), so that it survives until the exec.
    fd = fcntl(opened, F_DUPFD_CLOEXEC, 10);
    close(opened);
    if (fd < 0) {
        error = file + ": " + std::strerror(errno);
        return false;
    }
    path = file;
    return true;
}

bool WorkerProcess::spawn(const HelperBinary& binary, const std::vector<std::string>& args, std::string& error) {
    const std::string& path = binary.path;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        error = std::string("socketpair: ") + std::strerror(errno);
        return false;
    }
    // The parent's end never blocks: a wake byte that does not fit means one is pending.
    fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK);

    // Everything the child needs is built before fork(): after it, in a process with
    // threads, only async-signal-safe calls are allowed.
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(path.c_str()));
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = getpid();

    const pid_t pid = fork();
    if (pid < 0) {
        error = std::string("fork: ") + std::strerror(errno);
        close(pair[0]);
        close(pair[1]);
        return false;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);  // sustaind died before the line above took effect
        if (dup2(pair[1], 3) < 0) _exit(1);  // dup2 clears close-on-exec on fd 3
        // Nothing else of sustaind's goes along: libjack's server connection and avahi's
        // sockets are opened without close-on-exec, and a child holding them keeps them
        // open after sustaind has closed them (or died).
        // The binary's own descriptor stays until the exec (close-on-exec takes it then).
        close_range(4, static_cast<unsigned>(binary.fd) - 1, 0);
        close_range(static_cast<unsigned>(binary.fd) + 1, ~0U, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        execveat(binary.fd, "", argv.data(), environ, AT_EMPTY_PATH);
        _exit(127);
    }
    close(pair[1]);
    pid_ = pid;
    wakeFd_ = pair[0];
    reaped_ = false;
    exit_ = {};
    pidFd_ = openPidFd(pid);
    if (pidFd_ < 0) {
        error = std::string("pidfd_open: ") + std::strerror(errno) + " (Linux 5.3 or later is required)";
        killAndReap();
        return false;
    }
    return true;
}

namespace {

/// The fields after "(comm) " of a /proc stat line, or null. comm may contain spaces and
/// parentheses: the last ')' ends it.
const char* statFields(const char* text) {
    const char* end = std::strrchr(text, ')');
    return end != nullptr && end[1] == ' ' ? end + 2 : nullptr;
}

// Field `number` (1-based, as in proc(5)) of a /proc stat line, from the state (field 3)
// on; nullptr if the line is shorter.
const char* statField(const char* text, int number) {
    const char* field = statFields(text);
    for (int skip = 3; field != nullptr && skip < number; ++skip) {
        field = std::strchr(field, ' ');
        if (field != nullptr) ++field;
    }
    return field;
}

bool readSmallFile(const char* path, char* buffer, size_t size) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = ::read(fd, buffer, size - 1);
    ::close(fd);
    if (n <= 0) return false;
    buffer[n] = '\0';
    return true;
}

}  // namespace

bool WorkerProcess::stopped() const {
    if (!running()) return false;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid_));
    char buffer[512];
    if (!readSmallFile(path, buffer, sizeof buffer)) return false;
    const char* state = statFields(buffer);  // "pid (comm) state ..."
    return state != nullptr && state[0] == 'T';
}


pid_t WorkerProcess::audioThread() const {
    if (!running()) return 0;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid_));
    DIR* tasks = ::opendir(path);
    if (tasks == nullptr) return 0;
    pid_t best = 0;
    long bestPriority = 0;
    while (const dirent* entry = ::readdir(tasks)) {
        const long tid = std::strtol(entry->d_name, nullptr, 10);
        if (tid <= 0) continue;
        char statPath[96];
        char text[1024];
        std::snprintf(statPath, sizeof statPath, "/proc/%d/task/%ld/stat", static_cast<int>(pid_), tid);
        if (!readSmallFile(statPath, text, sizeof text)) continue;
        const char* field = statField(text, 40);  // rt_priority
        const long priority = field != nullptr ? std::strtol(field, nullptr, 10) : 0;
        if (priority > bestPriority) {
            bestPriority = priority;
            best = static_cast<pid_t>(tid);
        }
    }
    ::closedir(tasks);
    return best;
}

int WorkerProcess::threadCpu(pid_t tid) const {
    if (!running() || tid <= 0) return -1;
    char path[96];
    char text[1024];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(pid_), static_cast<int>(tid));
    if (!readSmallFile(path, text, sizeof text)) return -1;
    const char* field = statField(text, 39);  // processor
    return field != nullptr ? static_cast<int>(std::strtol(field, nullptr, 10)) : -1;
}

uint64_t WorkerProcess::threadCpuNs(pid_t tid) const {
    if (!running() || tid <= 0) return 0;
    char path[96];
    char text[256];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", static_cast<int>(pid_), static_cast<int>(tid));
    if (!readSmallFile(path, text, sizeof text)) return 0;
    return std::strtoull(text, nullptr, 10);  // time on a CPU, in ns
}

bool WorkerProcess::tryReap() {
    if (pid_ <= 0) return false;
    if (reaped_) return true;
    int status = 0;
    const pid_t got = waitpid(pid_, &status, WNOHANG);
    if (got != pid_) return false;
    reaped_ = true;
    exit_.exited = WIFEXITED(status);
    exit_.code = exit_.exited ? WEXITSTATUS(status) : 0;
    exit_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return true;
}

void WorkerProcess::kill() {
    if (pid_ <= 0 || reaped_) return;
    if (pidFd_ >= 0)
        signalPidFd(pidFd_, SIGKILL);
    else
        ::kill(pid_, SIGKILL);
}

bool WorkerProcess::killAndReap(int timeoutMs) {
    if (pid_ <= 0 || reaped_) return true;
    kill();
    timespec start{};
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (!tryReap()) {
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        const long waitedMs = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1'000'000;
        if (waitedMs >= timeoutMs) return false;
        // The pidfd turns readable once the child has exited; without one, look again in 2 ms.
        pollfd exited{pidFd_, POLLIN, 0};
        if (pidFd_ < 0 || poll(&exited, 1, static_cast<int>(timeoutMs - waitedMs)) < 0) usleep(2000);
    }
    return true;
}

void WorkerProcess::release() {
    if (pidFd_ >= 0) close(pidFd_);
    if (wakeFd_ >= 0) close(wakeFd_);
    pidFd_ = -1;
    wakeFd_ = -1;
    pid_ = -1;
    reaped_ = false;
}

}  // namespace sustain
