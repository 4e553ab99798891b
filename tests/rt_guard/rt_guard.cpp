// librtguard.so: counts forbidden calls made inside the real-time region (see rt_guard.h).
//
// Built only for tests and loaded with LD_PRELOAD, so our definitions of malloc, read,
// pthread_mutex_lock, ... come first in the global lookup order and every call from the
// executable and from every library reaches them; dlsym(RTLD_NEXT) gives the real ones.
//
// Two rules shape everything below:
// - Whatever runs inside an interposer may itself be called from the region, so it must
//   not allocate, lock or make system calls: thread-locals (initial-exec, no
//   __tls_get_addr, which may allocate), relaxed atomics and a fixed table only.
// - The interposers also run before the guard is initialised (ld.so and libc call malloc
//   before our constructor) and while dlsym is resolving them (dlsym may call malloc and
//   calloc), so every forward must cope with "the real function is not known yet".
#include "tests/rt_guard/rt_guard.h"

// The fortified headers turn read(), printf(), ... into inline wrappers that would clash
// with our definitions; the __*_chk entry points that fortified callers use are
// interposed separately below.
#undef _FORTIFY_SOURCE
// With 64-bit file offsets (meson's default) the headers rename open() to open64() and
// so on, and our "open" would define open64 twice. Undefined here, every name is literal;
// the *64 variants, which is what callers built with meson actually call, are listed
// separately.
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

// Not declared by any header we include: the C++ ABI entry points and the fortified
// variants of the stdio and I/O functions. Only the symbol names matter to the linker;
// the parameter types match the Itanium C++ ABI and glibc.
extern "C" {
[[noreturn]] void __cxa_throw(void* thrown, void* typeInfo, void (*destructor)(void*));
[[noreturn]] void __cxa_rethrow();
void* __cxa_allocate_exception(size_t size) noexcept;
int __printf_chk(int flag, const char* format, ...);
int __fprintf_chk(FILE* stream, int flag, const char* format, ...);
int __vprintf_chk(int flag, const char* format, va_list args);
int __vfprintf_chk(FILE* stream, int flag, const char* format, va_list args);
ssize_t __read_chk(int fd, void* buf, size_t count, size_t bufSize);
ssize_t __recv_chk(int fd, void* buf, size_t count, size_t bufSize, int flags);
ssize_t __recvfrom_chk(int fd, void* buf, size_t count, size_t bufSize, int flags,
                       struct sockaddr* from, socklen_t* fromLen);
int __poll_chk(struct pollfd* fds, nfds_t count, int timeoutMs, size_t fdsSize);
}

namespace {

// Every interposed function, once. The order is the order of the report.
#define SUSTAIN_RT_GUARD_FUNCTIONS(X)                                                     \
    /* allocation */                                                                      \
    X(malloc) X(calloc) X(realloc) X(reallocarray) X(free) X(aligned_alloc)               \
    X(posix_memalign) X(memalign) X(valloc) X(pvalloc)                                    \
    /* locks and waits */                                                                 \
    X(pthread_mutex_lock) X(pthread_mutex_trylock) X(pthread_mutex_timedlock)             \
    X(pthread_mutex_clocklock) X(pthread_rwlock_rdlock) X(pthread_rwlock_wrlock)          \
    X(pthread_rwlock_tryrdlock) X(pthread_rwlock_trywrlock) X(pthread_rwlock_timedrdlock) \
    X(pthread_rwlock_timedwrlock) X(pthread_spin_lock) X(pthread_cond_wait)               \
    X(pthread_cond_timedwait) X(pthread_cond_clockwait) X(pthread_cond_signal)            \
    X(pthread_cond_broadcast) X(sem_wait) X(sem_timedwait) X(sem_clockwait) X(sem_post)   \
    /* sleeping and scheduling */                                                         \
    X(nanosleep) X(clock_nanosleep) X(usleep) X(sleep) X(sched_yield)                     \
    /* I/O and polling */                                                                 \
    X(read) X(write) X(readv) X(writev) X(pread) X(pread64) X(pwrite) X(pwrite64)         \
    X(send) X(sendto) X(sendmsg) X(recv) X(recvfrom) X(recvmsg) X(poll) X(ppoll)          \
    X(select) X(pselect) X(epoll_wait) X(epoll_pwait) X(open) X(open64) X(openat)         \
    X(openat64) X(close) X(ioctl)                                                         \
    /* memory mapping and raw system calls */                                             \
    X(mmap) X(mmap64) X(munmap) X(syscall)                                                \
    /* stdio (glibc writes through internal calls that never reach write()) */            \
    X(fopen) X(fopen64) X(fclose) X(fflush) X(fread) X(fwrite) X(fputs) X(puts) X(fputc)  \
    X(putc) X(putchar) X(printf) X(fprintf) X(vprintf) X(vfprintf) X(__printf_chk)        \
    X(__fprintf_chk) X(__vprintf_chk) X(__vfprintf_chk) X(__read_chk) X(__recv_chk)       \
    X(__recvfrom_chk) X(__poll_chk)                                                       \
    /* exceptions */                                                                      \
    X(__cxa_allocate_exception) X(__cxa_throw) X(__cxa_rethrow)

enum class Fn : unsigned {
#define SUSTAIN_RT_GUARD_ENUM(name) name,
    SUSTAIN_RT_GUARD_FUNCTIONS(SUSTAIN_RT_GUARD_ENUM)
#undef SUSTAIN_RT_GUARD_ENUM
        kCount
};

constexpr unsigned kFunctionCount = static_cast<unsigned>(Fn::kCount);

constexpr const char* kNames[kFunctionCount] = {
#define SUSTAIN_RT_GUARD_NAME(name) #name,
    SUSTAIN_RT_GUARD_FUNCTIONS(SUSTAIN_RT_GUARD_NAME)
#undef SUSTAIN_RT_GUARD_NAME
};

constexpr unsigned index(Fn fn) noexcept { return static_cast<unsigned>(fn); }

// Zero-initialised statics, so they are valid before any constructor runs (ld.so and libc
// call malloc before ours does).
std::atomic<void*> gReal[kFunctionCount];
std::atomic<unsigned long long> gViolations[kFunctionCount];
std::atomic<unsigned long long> gEntries;
std::atomic<unsigned long long> gUnbalancedLeaves;
static_assert(std::atomic<void*>::is_always_lock_free);
static_assert(std::atomic<unsigned long long>::is_always_lock_free);

// initial-exec: the library is loaded at startup (LD_PRELOAD), so its TLS is static and
// reached with one segment-relative load; the default model would call __tls_get_addr,
// which may allocate and so re-enter malloc.
[[gnu::tls_model("initial-exec")]] thread_local int tDepth = 0;
// Set while a counted call is being forwarded: the real function's own calls (fopen's
// malloc, printf's write) are part of that one violation, not new ones.
[[gnu::tls_model("initial-exec")]] thread_local bool tInHook = false;
// Set while this thread is inside dlsym, which may call malloc/calloc/free itself.
[[gnu::tls_model("initial-exec")]] thread_local bool tResolving = false;

// Counts the call if this thread is in the region and not already inside a counted call.
// RT-safe: yes (thread-local reads, one relaxed atomic increment).
class HookScope {
public:
    explicit HookScope(Fn fn) noexcept {
        if (tDepth > 0 && !tInHook) {
            gViolations[index(fn)].fetch_add(1, std::memory_order_relaxed);
            tInHook = true;
            owner_ = true;
        }
    }
    ~HookScope() {
        if (owner_) tInHook = false;
    }
    HookScope(const HookScope&) = delete;
    HookScope& operator=(const HookScope&) = delete;

    // For calls that never return (__cxa_throw): unwinding runs user destructors and
    // catch blocks, whose calls are the region's own again.
    void release() noexcept {
        if (owner_) tInHook = false;
        owner_ = false;
    }

private:
    bool owner_ = false;
};

// Suppresses counting for the guard's own work (resolving, writing the report).
class InternalScope {
public:
    InternalScope() noexcept : previous_(tInHook) { tInHook = true; }
    ~InternalScope() { tInHook = previous_; }
    InternalScope(const InternalScope&) = delete;
    InternalScope& operator=(const InternalScope&) = delete;

private:
    bool previous_;
};

// Looks the real function up; nullptr while this thread is already inside dlsym (the
// caller then serves the request from the bootstrap buffer) or if no later object
// defines it. Two threads may race here; both store the same address.
void* resolve(Fn fn) noexcept {
    if (tResolving) return nullptr;
    tResolving = true;
    void* const address = dlsym(RTLD_NEXT, kNames[index(fn)]);
    tResolving = false;
    if (address != nullptr) gReal[index(fn)].store(address, std::memory_order_release);
    return address;
}

template <typename F>
F realOrNull(Fn fn) noexcept {
    void* address = gReal[index(fn)].load(std::memory_order_acquire);
    if (address == nullptr) address = resolve(fn);
    return reinterpret_cast<F>(address);
}

// Straight to the real write(): this runs when some other function could not be
// resolved, so it must not depend on stdio or on realOrDie.
void writeStderr(const char* text) noexcept {
    const auto realWrite = realOrNull<decltype(&::write)>(Fn::write);
    if (realWrite != nullptr) static_cast<void>(realWrite(2, text, strlen(text)));
}

// For every function except the bootstrap allocators: without the real one there is
// nothing sensible to forward to, and guessing would change the program's behaviour.
template <typename F>
F realOrDie(Fn fn) noexcept {
    const F real = realOrNull<F>(fn);
    if (real == nullptr) {
        writeStderr("librtguard: no next definition of ");
        writeStderr(kNames[index(fn)]);
        writeStderr("; was the guard loaded with LD_PRELOAD?\n");
        abort();
    }
    return real;
}

// Bootstrap allocator for the calls dlsym makes while malloc/calloc are being resolved.
// Bump-only: a few hundred bytes are used in practice; free() ignores these blocks.
constexpr size_t kBootstrapBytes = 64 * 1024;
constexpr size_t kBootstrapHeader = 16;  // holds the block size, for realloc
alignas(64) unsigned char gBootstrap[kBootstrapBytes];
std::atomic<size_t> gBootstrapUsed{0};

bool isBootstrap(const void* pointer) noexcept {
    const auto address = reinterpret_cast<uintptr_t>(pointer);
    const auto begin = reinterpret_cast<uintptr_t>(gBootstrap);
    return address >= begin && address < begin + kBootstrapBytes;
}

// The buffer is static, hence already zero, and never reused, so calloc needs no memset.
void* bootstrapAlloc(size_t size, size_t alignment) noexcept {
    if (alignment < kBootstrapHeader) alignment = kBootstrapHeader;
    if (size > kBootstrapBytes || alignment > kBootstrapBytes) return nullptr;
    const size_t worst = size + alignment + kBootstrapHeader;
    const size_t offset = gBootstrapUsed.fetch_add(worst, std::memory_order_relaxed);
    if (offset + worst > kBootstrapBytes) {
        errno = ENOMEM;
        return nullptr;
    }
    const auto begin = reinterpret_cast<uintptr_t>(gBootstrap) + offset + kBootstrapHeader;
    const uintptr_t block = (begin + alignment - 1) & ~(uintptr_t{alignment} - 1);
    memcpy(reinterpret_cast<void*>(block - kBootstrapHeader), &size, sizeof size);
    return reinterpret_cast<void*>(block);
}

size_t bootstrapSize(const void* block) noexcept {
    size_t size = 0;
    memcpy(&size, static_cast<const unsigned char*>(block) - kBootstrapHeader, sizeof size);
    return size;
}

// Resolves everything up front so that no dlsym (which allocates and locks) happens
// later, inside somebody's region, on first use of a function.
void resolveAll() noexcept {
    const InternalScope internal;
    for (unsigned i = 0; i < kFunctionCount; ++i) {
        if (gReal[i].load(std::memory_order_acquire) == nullptr) resolve(static_cast<Fn>(i));
    }
}

// A forked child is a new process with its own report; it must not repeat the parent's.
void resetInChild() noexcept {
    for (auto& count : gViolations) count.store(0, std::memory_order_relaxed);
    gEntries.store(0, std::memory_order_relaxed);
    gUnbalancedLeaves.store(0, std::memory_order_relaxed);
}

unsigned long long totalViolations() noexcept {
    unsigned long long total = 0;
    for (const auto& count : gViolations) total += count.load(std::memory_order_relaxed);
    return total;
}

// Fixed-size text builder: the report is written at exit and possibly from inside the
// region, so it formats into a stack buffer instead of allocating.
class Text {
public:
    void add(const char* text) noexcept {
        while (*text != '\0' && used_ + 1 < sizeof buffer_) buffer_[used_++] = *text++;
        buffer_[used_] = '\0';
    }
    void add(unsigned long long value) noexcept {
        char digits[24];
        snprintf(digits, sizeof digits, "%llu", value);
        add(digits);
    }
    // JSON string body: escapes quotes, backslashes and control characters.
    void addJsonString(const char* text) noexcept {
        for (; *text != '\0'; ++text) {
            const auto c = static_cast<unsigned char>(*text);
            if (c == '"' || c == '\\') {
                const char escaped[3] = {'\\', static_cast<char>(c), '\0'};
                add(escaped);
            } else if (c < 0x20) {
                char escaped[8];
                snprintf(escaped, sizeof escaped, "\\u%04x", c);
                add(escaped);
            } else {
                const char plain[2] = {static_cast<char>(c), '\0'};
                add(plain);
            }
        }
    }
    // False when the text did not fit: better no report than a truncated one.
    bool complete() const noexcept { return used_ + 1 < sizeof buffer_; }
    const char* data() const noexcept { return buffer_; }
    size_t size() const noexcept { return used_; }

private:
    char buffer_[16384] = {};
    size_t used_ = 0;
};

bool writeAll(int fd, const char* data, size_t size) noexcept {
    while (size > 0) {
        const ssize_t written = ::write(fd, data, size);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return false;
        data += written;
        size -= static_cast<size_t>(written);
    }
    return true;
}

int writeReport() noexcept {
    const InternalScope internal;  // our own open/write/rename are not violations
    const char* const dir = getenv("SUSTAIN_RT_GUARD_REPORT");
    if (dir == nullptr || dir[0] == '\0') return 1;

    char exe[4096] = {};
    const ssize_t exeLength = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (exeLength > 0) exe[exeLength] = '\0';

    Text json;
    json.add("{\"pid\":");
    json.add(static_cast<unsigned long long>(getpid()));
    json.add(",\"exe\":\"");
    json.addJsonString(exe);
    json.add("\",\"guarded_calls\":");
    json.add(gEntries.load(std::memory_order_relaxed));
    json.add(",\"unbalanced_leaves\":");
    json.add(gUnbalancedLeaves.load(std::memory_order_relaxed));
    json.add(",\"violations\":{");
    // Read each counter once so that "total" is exactly the sum of the numbers shown,
    // even while other threads keep counting.
    unsigned long long total = 0;
    for (unsigned i = 0; i < kFunctionCount; ++i) {
        const unsigned long long count = gViolations[i].load(std::memory_order_relaxed);
        total += count;
        json.add(i == 0 ? "\"" : ",\"");
        json.add(kNames[i]);
        json.add("\":");
        json.add(count);
    }
    json.add("},\"total\":");
    json.add(total);
    json.add("}\n");
    if (!json.complete()) {
        errno = ENOSPC;
        return -1;
    }

    // Temporary name per thread: two threads reporting at once each rename a whole file.
    char path[4096];
    char temporary[4096];
    const auto pid = static_cast<long long>(getpid());
    const int pathLength = snprintf(path, sizeof path, "%s/rtguard.%lld.json", dir, pid);
    const int temporaryLength = snprintf(temporary, sizeof temporary, "%s/.rtguard.%lld.%ld.tmp",
                                         dir, pid, static_cast<long>(::syscall(SYS_gettid)));
    if (pathLength < 0 || temporaryLength < 0 || static_cast<size_t>(pathLength) >= sizeof path ||
        static_cast<size_t>(temporaryLength) >= sizeof temporary) {
        errno = ENAMETOOLONG;
        return -1;
    }
    const int fd = ::open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    const bool written = writeAll(fd, json.data(), json.size());
    const int savedErrno = errno;
    ::close(fd);
    if (!written || rename(temporary, path) != 0) {
        const int failure = written ? errno : savedErrno;
        unlink(temporary);
        errno = failure;
        return -1;
    }
    return 0;
}

[[gnu::constructor]] void initialise() {
    resolveAll();
    const InternalScope internal;
    pthread_atfork(nullptr, nullptr, resetInChild);
}

// Runs from exit() after main's own static destructors; not after _exit() or a signal.
[[gnu::destructor]] void finish() {
    const int savedErrno = errno;
    if (writeReport() < 0) writeStderr("librtguard: could not write the report\n");
    errno = savedErrno;
}

}  // namespace

// Expands to the body of a plain forwarding interposer: count, then call the real one.
#define SUSTAIN_RT_GUARD_FORWARD(name, ...)   \
    const HookScope hookScope(Fn::name);      \
    return realOrDie<decltype(&::name)>(Fn::name)(__VA_ARGS__)

extern "C" {

// ---- the hooks declared in engine/rt/rt_guard_hooks.h --------------------------------
// Not included here: that header declares them weak, and these must be strong definitions.

__attribute__((visibility("default"))) void sustain_rt_guard_enter() {
    ++tDepth;
    gEntries.fetch_add(1, std::memory_order_relaxed);
}

__attribute__((visibility("default"))) void sustain_rt_guard_leave() {
    // A stray leave is a bug in the caller; clamping keeps the thread guarded from its
    // next enter on instead of making it look permanently outside (negative depth).
    if (tDepth > 0) {
        --tDepth;
    } else {
        gUnbalancedLeaves.fetch_add(1, std::memory_order_relaxed);
    }
}

// ---- query API (rt_guard.h) ------------------------------------------------------------

unsigned long long sustain_rt_guard_violations(void) { return totalViolations(); }

unsigned long long sustain_rt_guard_entries(void) {
    return gEntries.load(std::memory_order_relaxed);
}

unsigned long long sustain_rt_guard_count(const char* function) {
    if (function == nullptr) return ~0ULL;
    for (unsigned i = 0; i < kFunctionCount; ++i) {
        if (strcmp(kNames[i], function) == 0) return gViolations[i].load(std::memory_order_relaxed);
    }
    return ~0ULL;
}

int sustain_rt_guard_report(void) { return writeReport(); }

// ---- allocation: these also serve dlsym's own allocations during resolution ------------

__attribute__((visibility("default"))) void* malloc(size_t size) noexcept {
    const HookScope hookScope(Fn::malloc);
    const auto real = realOrNull<decltype(&::malloc)>(Fn::malloc);
    return real != nullptr ? real(size) : bootstrapAlloc(size, 16);
}

__attribute__((visibility("default"))) void* calloc(size_t count, size_t size) noexcept {
    const HookScope hookScope(Fn::calloc);
    const auto real = realOrNull<decltype(&::calloc)>(Fn::calloc);
    if (real != nullptr) return real(count, size);
    size_t bytes = 0;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return nullptr;
    }
    return bootstrapAlloc(bytes, 16);
}

__attribute__((visibility("default"))) void* realloc(void* block, size_t size) noexcept {
    const HookScope hookScope(Fn::realloc);
    if (isBootstrap(block)) {
        // Move out of the bootstrap buffer into real memory; the old block is abandoned.
        const auto realMalloc = realOrNull<decltype(&::malloc)>(Fn::malloc);
        void* const moved = realMalloc != nullptr ? realMalloc(size) : bootstrapAlloc(size, 16);
        if (moved != nullptr) {
            const size_t old = bootstrapSize(block);
            memcpy(moved, block, old < size ? old : size);
        }
        return moved;
    }
    const auto real = realOrNull<decltype(&::realloc)>(Fn::realloc);
    if (real != nullptr) return real(block, size);
    // Only reachable from inside dlsym before realloc is known.
    if (block != nullptr) return nullptr;
    return bootstrapAlloc(size, 16);
}

__attribute__((visibility("default"))) void* reallocarray(void* block, size_t count,
                                                          size_t size) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(reallocarray, block, count, size);
}

__attribute__((visibility("default"))) void free(void* block) noexcept {
    const HookScope hookScope(Fn::free);
    if (block == nullptr || isBootstrap(block)) return;
    // free unknown only while dlsym resolves free itself: leaking that one block is safe.
    const auto real = realOrNull<decltype(&::free)>(Fn::free);
    if (real != nullptr) real(block);
}

__attribute__((visibility("default"))) void* aligned_alloc(size_t alignment,
                                                           size_t size) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(aligned_alloc, alignment, size);
}

__attribute__((visibility("default"))) int posix_memalign(void** out, size_t alignment,
                                                          size_t size) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(posix_memalign, out, alignment, size);
}

__attribute__((visibility("default"))) void* memalign(size_t alignment, size_t size) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(memalign, alignment, size);
}

__attribute__((visibility("default"))) void* valloc(size_t size) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(valloc, size);
}

__attribute__((visibility("default"))) void* pvalloc(size_t size) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pvalloc, size);
}

// ---- locks and waits --------------------------------------------------------------------

__attribute__((visibility("default"))) int pthread_mutex_lock(pthread_mutex_t* mutex) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_mutex_lock, mutex);
}

__attribute__((visibility("default"))) int pthread_mutex_trylock(
    pthread_mutex_t* mutex) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_mutex_trylock, mutex);
}

__attribute__((visibility("default"))) int pthread_mutex_timedlock(
    pthread_mutex_t* mutex, const struct timespec* deadline) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_mutex_timedlock, mutex, deadline);
}

__attribute__((visibility("default"))) int pthread_mutex_clocklock(
    pthread_mutex_t* mutex, clockid_t clock, const struct timespec* deadline) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_mutex_clocklock, mutex, clock, deadline);
}

__attribute__((visibility("default"))) int pthread_rwlock_rdlock(
    pthread_rwlock_t* lock) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_rwlock_rdlock, lock);
}

__attribute__((visibility("default"))) int pthread_rwlock_wrlock(
    pthread_rwlock_t* lock) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_rwlock_wrlock, lock);
}

__attribute__((visibility("default"))) int pthread_rwlock_tryrdlock(
    pthread_rwlock_t* lock) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_rwlock_tryrdlock, lock);
}

__attribute__((visibility("default"))) int pthread_rwlock_trywrlock(
    pthread_rwlock_t* lock) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_rwlock_trywrlock, lock);
}

__attribute__((visibility("default"))) int pthread_rwlock_timedrdlock(
    pthread_rwlock_t* lock, const struct timespec* deadline) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_rwlock_timedrdlock, lock, deadline);
}

__attribute__((visibility("default"))) int pthread_rwlock_timedwrlock(
    pthread_rwlock_t* lock, const struct timespec* deadline) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_rwlock_timedwrlock, lock, deadline);
}

__attribute__((visibility("default"))) int pthread_spin_lock(pthread_spinlock_t* lock) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_spin_lock, lock);
}

__attribute__((visibility("default"))) int pthread_cond_wait(pthread_cond_t* cond,
                                                             pthread_mutex_t* mutex) {
    SUSTAIN_RT_GUARD_FORWARD(pthread_cond_wait, cond, mutex);
}

__attribute__((visibility("default"))) int pthread_cond_timedwait(
    pthread_cond_t* cond, pthread_mutex_t* mutex, const struct timespec* deadline) {
    SUSTAIN_RT_GUARD_FORWARD(pthread_cond_timedwait, cond, mutex, deadline);
}

__attribute__((visibility("default"))) int pthread_cond_clockwait(
    pthread_cond_t* cond, pthread_mutex_t* mutex, clockid_t clock,
    const struct timespec* deadline) {
    SUSTAIN_RT_GUARD_FORWARD(pthread_cond_clockwait, cond, mutex, clock, deadline);
}

__attribute__((visibility("default"))) int pthread_cond_signal(pthread_cond_t* cond) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_cond_signal, cond);
}

__attribute__((visibility("default"))) int pthread_cond_broadcast(
    pthread_cond_t* cond) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(pthread_cond_broadcast, cond);
}

__attribute__((visibility("default"))) int sem_wait(sem_t* semaphore) {
    SUSTAIN_RT_GUARD_FORWARD(sem_wait, semaphore);
}

__attribute__((visibility("default"))) int sem_timedwait(sem_t* semaphore,
                                                         const struct timespec* deadline) {
    SUSTAIN_RT_GUARD_FORWARD(sem_timedwait, semaphore, deadline);
}

__attribute__((visibility("default"))) int sem_clockwait(sem_t* semaphore, clockid_t clock,
                                                         const struct timespec* deadline) {
    SUSTAIN_RT_GUARD_FORWARD(sem_clockwait, semaphore, clock, deadline);
}

__attribute__((visibility("default"))) int sem_post(sem_t* semaphore) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(sem_post, semaphore);
}

// ---- sleeping and scheduling ------------------------------------------------------------

__attribute__((visibility("default"))) int nanosleep(const struct timespec* duration,
                                                     struct timespec* remaining) {
    SUSTAIN_RT_GUARD_FORWARD(nanosleep, duration, remaining);
}

__attribute__((visibility("default"))) int clock_nanosleep(clockid_t clock, int flags,
                                                           const struct timespec* duration,
                                                           struct timespec* remaining) {
    SUSTAIN_RT_GUARD_FORWARD(clock_nanosleep, clock, flags, duration, remaining);
}

__attribute__((visibility("default"))) int usleep(useconds_t microseconds) {
    SUSTAIN_RT_GUARD_FORWARD(usleep, microseconds);
}

__attribute__((visibility("default"))) unsigned int sleep(unsigned int seconds) {
    SUSTAIN_RT_GUARD_FORWARD(sleep, seconds);
}

__attribute__((visibility("default"))) int sched_yield(void) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(sched_yield);
}

// ---- I/O and polling --------------------------------------------------------------------

__attribute__((visibility("default"))) ssize_t read(int fd, void* buffer, size_t count) {
    SUSTAIN_RT_GUARD_FORWARD(read, fd, buffer, count);
}

__attribute__((visibility("default"))) ssize_t write(int fd, const void* buffer, size_t count) {
    SUSTAIN_RT_GUARD_FORWARD(write, fd, buffer, count);
}

__attribute__((visibility("default"))) ssize_t readv(int fd, const struct iovec* vectors,
                                                     int count) {
    SUSTAIN_RT_GUARD_FORWARD(readv, fd, vectors, count);
}

__attribute__((visibility("default"))) ssize_t writev(int fd, const struct iovec* vectors,
                                                      int count) {
    SUSTAIN_RT_GUARD_FORWARD(writev, fd, vectors, count);
}

__attribute__((visibility("default"))) ssize_t pread(int fd, void* buffer, size_t count,
                                                     off_t offset) {
    SUSTAIN_RT_GUARD_FORWARD(pread, fd, buffer, count, offset);
}

__attribute__((visibility("default"))) ssize_t pwrite(int fd, const void* buffer, size_t count,
                                                      off_t offset) {
    SUSTAIN_RT_GUARD_FORWARD(pwrite, fd, buffer, count, offset);
}

__attribute__((visibility("default"))) ssize_t pread64(int fd, void* buffer, size_t count,
                                                       off64_t offset) {
    SUSTAIN_RT_GUARD_FORWARD(pread64, fd, buffer, count, offset);
}

__attribute__((visibility("default"))) ssize_t pwrite64(int fd, const void* buffer,
                                                        size_t count, off64_t offset) {
    SUSTAIN_RT_GUARD_FORWARD(pwrite64, fd, buffer, count, offset);
}

__attribute__((visibility("default"))) ssize_t send(int fd, const void* buffer, size_t count,
                                                    int flags) {
    SUSTAIN_RT_GUARD_FORWARD(send, fd, buffer, count, flags);
}

__attribute__((visibility("default"))) ssize_t sendto(int fd, const void* buffer, size_t count,
                                                      int flags, const struct sockaddr* to,
                                                      socklen_t toLength) {
    SUSTAIN_RT_GUARD_FORWARD(sendto, fd, buffer, count, flags, to, toLength);
}

__attribute__((visibility("default"))) ssize_t sendmsg(int fd, const struct msghdr* message,
                                                       int flags) {
    SUSTAIN_RT_GUARD_FORWARD(sendmsg, fd, message, flags);
}

__attribute__((visibility("default"))) ssize_t recv(int fd, void* buffer, size_t count,
                                                    int flags) {
    SUSTAIN_RT_GUARD_FORWARD(recv, fd, buffer, count, flags);
}

__attribute__((visibility("default"))) ssize_t recvfrom(int fd, void* buffer, size_t count,
                                                        int flags, struct sockaddr* from,
                                                        socklen_t* fromLength) {
    SUSTAIN_RT_GUARD_FORWARD(recvfrom, fd, buffer, count, flags, from, fromLength);
}

__attribute__((visibility("default"))) ssize_t recvmsg(int fd, struct msghdr* message,
                                                       int flags) {
    SUSTAIN_RT_GUARD_FORWARD(recvmsg, fd, message, flags);
}

__attribute__((visibility("default"))) int poll(struct pollfd* fds, nfds_t count,
                                                int timeoutMs) {
    SUSTAIN_RT_GUARD_FORWARD(poll, fds, count, timeoutMs);
}

__attribute__((visibility("default"))) int ppoll(struct pollfd* fds, nfds_t count,
                                                 const struct timespec* timeout,
                                                 const sigset_t* mask) {
    SUSTAIN_RT_GUARD_FORWARD(ppoll, fds, count, timeout, mask);
}

__attribute__((visibility("default"))) int select(int count, fd_set* readable,
                                                  fd_set* writable, fd_set* failed,
                                                  struct timeval* timeout) {
    SUSTAIN_RT_GUARD_FORWARD(select, count, readable, writable, failed, timeout);
}

__attribute__((visibility("default"))) int pselect(int count, fd_set* readable,
                                                   fd_set* writable, fd_set* failed,
                                                   const struct timespec* timeout,
                                                   const sigset_t* mask) {
    SUSTAIN_RT_GUARD_FORWARD(pselect, count, readable, writable, failed, timeout, mask);
}

__attribute__((visibility("default"))) int epoll_wait(int fd, struct epoll_event* events,
                                                      int maxEvents, int timeoutMs) {
    SUSTAIN_RT_GUARD_FORWARD(epoll_wait, fd, events, maxEvents, timeoutMs);
}

__attribute__((visibility("default"))) int epoll_pwait(int fd, struct epoll_event* events,
                                                       int maxEvents, int timeoutMs,
                                                       const sigset_t* mask) {
    SUSTAIN_RT_GUARD_FORWARD(epoll_pwait, fd, events, maxEvents, timeoutMs, mask);
}

// open/openat take a mode only with O_CREAT or O_TMPFILE; passing it always is harmless
// (the real function ignores it otherwise), and reading it is how glibc does it too.
__attribute__((visibility("default"))) int open(const char* path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    const auto mode = static_cast<mode_t>(va_arg(args, unsigned int));
    va_end(args);
    SUSTAIN_RT_GUARD_FORWARD(open, path, flags, mode);
}

__attribute__((visibility("default"))) int open64(const char* path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    const auto mode = static_cast<mode_t>(va_arg(args, unsigned int));
    va_end(args);
    SUSTAIN_RT_GUARD_FORWARD(open64, path, flags, mode);
}

__attribute__((visibility("default"))) int openat(int dirFd, const char* path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    const auto mode = static_cast<mode_t>(va_arg(args, unsigned int));
    va_end(args);
    SUSTAIN_RT_GUARD_FORWARD(openat, dirFd, path, flags, mode);
}

__attribute__((visibility("default"))) int openat64(int dirFd, const char* path, int flags,
                                                    ...) {
    va_list args;
    va_start(args, flags);
    const auto mode = static_cast<mode_t>(va_arg(args, unsigned int));
    va_end(args);
    SUSTAIN_RT_GUARD_FORWARD(openat64, dirFd, path, flags, mode);
}

__attribute__((visibility("default"))) int close(int fd) {
    SUSTAIN_RT_GUARD_FORWARD(close, fd);
}

// Every ioctl request passes at most one argument, an int or a pointer; forwarding a
// pointer-sized value covers both on the ABIs we run on.
__attribute__((visibility("default"))) int ioctl(int fd, unsigned long request, ...) noexcept {
    va_list args;
    va_start(args, request);
    void* const argument = va_arg(args, void*);
    va_end(args);
    SUSTAIN_RT_GUARD_FORWARD(ioctl, fd, request, argument);
}

// ---- memory mapping and raw system calls ------------------------------------------------

__attribute__((visibility("default"))) void* mmap(void* address, size_t length, int protection,
                                                  int flags, int fd, off_t offset) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(mmap, address, length, protection, flags, fd, offset);
}

__attribute__((visibility("default"))) void* mmap64(void* address, size_t length,
                                                    int protection, int flags, int fd,
                                                    off64_t offset) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(mmap64, address, length, protection, flags, fd, offset);
}

__attribute__((visibility("default"))) int munmap(void* address, size_t length) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(munmap, address, length);
}

// syscall() takes up to six register-sized arguments; reading six is what glibc's own
// syscall() does, whatever the call needs.
__attribute__((visibility("default"))) long syscall(long number, ...) noexcept {
    va_list args;
    va_start(args, number);
    long a[6];
    for (long& argument : a) argument = va_arg(args, long);
    va_end(args);
    SUSTAIN_RT_GUARD_FORWARD(syscall, number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

// ---- stdio --------------------------------------------------------------------------------

__attribute__((visibility("default"))) FILE* fopen(const char* path, const char* mode) {
    SUSTAIN_RT_GUARD_FORWARD(fopen, path, mode);
}

__attribute__((visibility("default"))) FILE* fopen64(const char* path, const char* mode) {
    SUSTAIN_RT_GUARD_FORWARD(fopen64, path, mode);
}

__attribute__((visibility("default"))) int fclose(FILE* stream) {
    SUSTAIN_RT_GUARD_FORWARD(fclose, stream);
}

__attribute__((visibility("default"))) int fflush(FILE* stream) {
    SUSTAIN_RT_GUARD_FORWARD(fflush, stream);
}

__attribute__((visibility("default"))) size_t fread(void* buffer, size_t size, size_t count,
                                                    FILE* stream) {
    SUSTAIN_RT_GUARD_FORWARD(fread, buffer, size, count, stream);
}

__attribute__((visibility("default"))) size_t fwrite(const void* buffer, size_t size,
                                                     size_t count, FILE* stream) {
    SUSTAIN_RT_GUARD_FORWARD(fwrite, buffer, size, count, stream);
}

__attribute__((visibility("default"))) int fputs(const char* text, FILE* stream) {
    SUSTAIN_RT_GUARD_FORWARD(fputs, text, stream);
}

__attribute__((visibility("default"))) int puts(const char* text) {
    SUSTAIN_RT_GUARD_FORWARD(puts, text);
}

__attribute__((visibility("default"))) int fputc(int c, FILE* stream) {
    SUSTAIN_RT_GUARD_FORWARD(fputc, c, stream);
}

__attribute__((visibility("default"))) int putc(int c, FILE* stream) {
    SUSTAIN_RT_GUARD_FORWARD(putc, c, stream);
}

__attribute__((visibility("default"))) int putchar(int c) {
    SUSTAIN_RT_GUARD_FORWARD(putchar, c);
}

__attribute__((visibility("default"))) int vprintf(const char* format, va_list args) {
    SUSTAIN_RT_GUARD_FORWARD(vprintf, format, args);
}

__attribute__((visibility("default"))) int vfprintf(FILE* stream, const char* format,
                                                    va_list args) {
    SUSTAIN_RT_GUARD_FORWARD(vfprintf, stream, format, args);
}

__attribute__((visibility("default"))) int __vprintf_chk(int flag, const char* format,
                                                         va_list args) {
    SUSTAIN_RT_GUARD_FORWARD(__vprintf_chk, flag, format, args);
}

__attribute__((visibility("default"))) int __vfprintf_chk(FILE* stream, int flag,
                                                          const char* format, va_list args) {
    SUSTAIN_RT_GUARD_FORWARD(__vfprintf_chk, stream, flag, format, args);
}

// The variadic ones count under their own name and forward to the real v-variant
// directly (not to our interposer, which would be a second, suppressed hook anyway).
__attribute__((visibility("default"))) int printf(const char* format, ...) {
    const HookScope hookScope(Fn::printf);
    va_list args;
    va_start(args, format);
    const int result = realOrDie<decltype(&::vprintf)>(Fn::vprintf)(format, args);
    va_end(args);
    return result;
}

__attribute__((visibility("default"))) int fprintf(FILE* stream, const char* format, ...) {
    const HookScope hookScope(Fn::fprintf);
    va_list args;
    va_start(args, format);
    const int result = realOrDie<decltype(&::vfprintf)>(Fn::vfprintf)(stream, format, args);
    va_end(args);
    return result;
}

__attribute__((visibility("default"))) int __printf_chk(int flag, const char* format, ...) {
    const HookScope hookScope(Fn::__printf_chk);
    va_list args;
    va_start(args, format);
    const int result =
        realOrDie<decltype(&::__vprintf_chk)>(Fn::__vprintf_chk)(flag, format, args);
    va_end(args);
    return result;
}

__attribute__((visibility("default"))) int __fprintf_chk(FILE* stream, int flag,
                                                         const char* format, ...) {
    const HookScope hookScope(Fn::__fprintf_chk);
    va_list args;
    va_start(args, format);
    const int result =
        realOrDie<decltype(&::__vfprintf_chk)>(Fn::__vfprintf_chk)(stream, flag, format, args);
    va_end(args);
    return result;
}

__attribute__((visibility("default"))) ssize_t __read_chk(int fd, void* buf, size_t count,
                                                          size_t bufSize) {
    SUSTAIN_RT_GUARD_FORWARD(__read_chk, fd, buf, count, bufSize);
}

__attribute__((visibility("default"))) ssize_t __recv_chk(int fd, void* buf, size_t count,
                                                          size_t bufSize, int flags) {
    SUSTAIN_RT_GUARD_FORWARD(__recv_chk, fd, buf, count, bufSize, flags);
}

__attribute__((visibility("default"))) ssize_t __recvfrom_chk(int fd, void* buf, size_t count,
                                                              size_t bufSize, int flags,
                                                              struct sockaddr* from,
                                                              socklen_t* fromLen) {
    SUSTAIN_RT_GUARD_FORWARD(__recvfrom_chk, fd, buf, count, bufSize, flags, from, fromLen);
}

__attribute__((visibility("default"))) int __poll_chk(struct pollfd* fds, nfds_t count,
                                                      int timeoutMs, size_t fdsSize) {
    SUSTAIN_RT_GUARD_FORWARD(__poll_chk, fds, count, timeoutMs, fdsSize);
}

// ---- exceptions ---------------------------------------------------------------------------

__attribute__((visibility("default"))) void* __cxa_allocate_exception(size_t size) noexcept {
    SUSTAIN_RT_GUARD_FORWARD(__cxa_allocate_exception, size);
}

__attribute__((visibility("default"))) void __cxa_throw(void* thrown, void* typeInfo,
                                                        void (*destructor)(void*)) {
    HookScope hookScope(Fn::__cxa_throw);
    const auto real = realOrDie<void (*)(void*, void*, void (*)(void*))>(Fn::__cxa_throw);
    hookScope.release();
    real(thrown, typeInfo, destructor);
    abort();  // the real __cxa_throw never returns
}

__attribute__((visibility("default"))) void __cxa_rethrow() {
    HookScope hookScope(Fn::__cxa_rethrow);
    const auto real = realOrDie<void (*)()>(Fn::__cxa_rethrow);
    hookScope.release();
    real();
    abort();  // the real __cxa_rethrow never returns
}

}  // extern "C"
