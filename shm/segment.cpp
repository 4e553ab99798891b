#include "shm/segment.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "shm/clock.h"
#include "shm/spsc_ring.h"

namespace sustain {

std::string validateInstanceName(std::string_view instance) {
    if (instance.empty()) return "instance name is empty";
    if (instance.size() > kInstanceNameMax)
        return "instance name is " + std::to_string(instance.size()) + " characters long, at most " +
               std::to_string(kInstanceNameMax) + " are allowed";
    if (instance.front() == '-') return "instance name must not start with '-'";
    for (char c : instance) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '_' || c == '-';
        if (!ok) return "instance name may only contain letters, digits, '_' and '-'";
    }
    return {};
}

std::string segmentObjectName(std::string_view instance) { return "/sustain-" + std::string(instance); }
std::string lockObjectName(std::string_view instance) { return "/sustain-" + std::string(instance) + ".lock"; }
std::string workerClientName(std::string_view instance, uint32_t generation) {
    return "sustain-" + std::string(instance) + "-w" + std::to_string(generation);
}

MappedSegment::MappedSegment(MappedSegment&& other) noexcept : base_(other.base_), size_(other.size_) {
    other.base_ = nullptr;
    other.size_ = 0;
}

MappedSegment& MappedSegment::operator=(MappedSegment&& other) noexcept {
    if (this != &other) {
        reset();
        base_ = other.base_;
        size_ = other.size_;
        other.base_ = nullptr;
        other.size_ = 0;
    }
    return *this;
}

MappedSegment::~MappedSegment() { reset(); }

void MappedSegment::reset() {
    if (base_ != nullptr) munmap(base_, size_);
    base_ = nullptr;
    size_ = 0;
}

std::string describe(AttachError error, std::string_view instance, const std::string& detail) {
    const std::string name = "shm \"" + std::string(instance) + "\": ";
    const std::string more = detail.empty() ? "" : " (" + detail + ")";
    switch (error) {
        case AttachError::None: return name + "attached";
        case AttachError::InvalidName: return name + "invalid instance name" + more;
        case AttachError::NotFound: return name + "no engine is running for this instance" + more;
        case AttachError::PermissionDenied: return name + "permission denied" + more;
        case AttachError::ForeignOwner: return name + "owned by another user; not attaching" + more;
        case AttachError::BadMode: return name + "accessible to other users; not trusting it" + more;
        case AttachError::SizeMismatch: return name + "unexpected size; not attaching" + more;
        case AttachError::BadMagic: return name + "not a sustain segment; not attaching" + more;
        case AttachError::VersionMismatch: return name + "layout version mismatch; not attaching (restart sustaind)" + more;
        case AttachError::NotReady: return name + "still being initialised by sustaind" + more;
        case AttachError::SystemError: return name + "system error" + more;
    }
    return name + "unknown error";
}

AttachError attachSegment(std::string_view instance, bool readOnly, MappedSegment& out, std::string* detail) {
    auto say = [&](std::string text) {
        if (detail != nullptr) *detail = std::move(text);
    };
    if (std::string why = validateInstanceName(instance); !why.empty()) {
        say(why);
        return AttachError::InvalidName;
    }
    const int fd = shm_open(segmentObjectName(instance).c_str(), readOnly ? O_RDONLY : O_RDWR, 0);
    if (fd < 0) {
        if (errno == ENOENT) return AttachError::NotFound;
        say(std::strerror(errno));
        return errno == EACCES ? AttachError::PermissionDenied : AttachError::SystemError;
    }
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        say(std::strerror(errno));
        close(fd);
        return AttachError::SystemError;
    }
    if (st.st_uid != geteuid()) {
        say("owner uid " + std::to_string(st.st_uid) + ", this process runs as uid " + std::to_string(geteuid()));
        close(fd);
        return AttachError::ForeignOwner;
    }
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        say(std::string("mode ") + mode + ", expected 0600");
        close(fd);
        return AttachError::BadMode;
    }
    if (static_cast<uint64_t>(st.st_size) != kSegmentSize) {
        say("size " + std::to_string(st.st_size) + " bytes, this program expects " + std::to_string(kSegmentSize));
        close(fd);
        return AttachError::SizeMismatch;
    }
    void* base = mmap(nullptr, kSegmentSize, readOnly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        say(std::strerror(errno));
        return AttachError::SystemError;
    }
    const auto* segment = static_cast<const Segment*>(base);
    const uint32_t magic = segment->header.magic.load(std::memory_order_acquire);
    AttachError error = AttachError::None;
    if (magic == 0) {
        error = AttachError::NotReady;
    } else if (magic != kLayoutMagic) {
        char text[64];
        std::snprintf(text, sizeof text, "magic 0x%08x, expected 0x%08x", magic, kLayoutMagic);
        say(text);
        error = AttachError::BadMagic;
    } else if (segment->header.layoutVersion != kLayoutVersion) {
        say("layout version " + std::to_string(segment->header.layoutVersion) + ", this program expects " +
            std::to_string(kLayoutVersion));
        error = AttachError::VersionMismatch;
    } else if (segment->header.segmentSize != kSegmentSize) {
        say("header says " + std::to_string(segment->header.segmentSize) + " bytes, this program expects " +
            std::to_string(kSegmentSize));
        error = AttachError::SizeMismatch;
    }
    if (error != AttachError::None) {
        munmap(base, kSegmentSize);
        return error;
    }
    out.reset();
    out.base_ = base;
    out.size_ = kSegmentSize;
    return AttachError::None;
}

void initializeSegment(Segment& segment, int creatorPid) {
    SegmentHeader& header = segment.header;
    header.layoutVersion = kLayoutVersion;
    header.segmentSize = kSegmentSize;
    header.creatorPid = creatorPid;
    header.createdNs = monotonicNs();
    header.createdRealtimeNs = realtimeNs();
    header.controlOffset = offsetof(Segment, control);
    header.configOffset = offsetof(Segment, config);
    header.slotsOffset = offsetof(Segment, slots);
    header.paramsOffset = offsetof(Segment, params);
    header.ringsOffset = offsetof(Segment, rings);
    header.stateOffset = offsetof(Segment, state);
    header.metricsOffset = offsetof(Segment, osc);
    header.registryOffset = offsetof(Segment, registry);
    segment.control.layoutVersion.store(kLayoutVersion, std::memory_order_relaxed);
    segment.control.supervisorPid.store(creatorPid, std::memory_order_relaxed);
    for (uint32_t slot = 0; slot < kWorkerSlots; ++slot)
        SpscRing<Command>::initialize(segment.rings[slot].indices, kCommandRingCapacity);
    header.magic.store(kLayoutMagic, std::memory_order_release);
}

bool registerAllocation(Segment& segment, RegistryKind kind, std::string_view name, uint64_t size, int ownerPid) {
    for (RegistryEntry& entry : segment.registry.entries) {
        if (entry.kind.load(std::memory_order_relaxed) != static_cast<uint32_t>(RegistryKind::Free)) continue;
        entry.ownerPid = ownerPid;
        entry.size = size;
        entry.createdNs = monotonicNs();
        const size_t n = std::min(name.size(), sizeof entry.name - 1);
        std::memcpy(entry.name, name.data(), n);
        entry.name[n] = '\0';
        entry.kind.store(static_cast<uint32_t>(kind), std::memory_order_release);
        return true;
    }
    return false;
}

SegmentOwner::~SegmentOwner() { remove(); }

SegmentOwner::Result SegmentOwner::create(std::string_view instance, std::string& message) {
    if (std::string why = validateInstanceName(instance); !why.empty()) {
        message = "--instance \"" + std::string(instance) + "\": " + why;
        return Result::InvalidName;
    }
    const std::string lockName = lockObjectName(instance);
    const std::string segmentName = segmentObjectName(instance);
    const mode_t oldMask = umask(077);

    // The lock object is never trusted to be the one at the path until we hold it and the
    // path still names it: a sustaind shutting down unlinks it while holding the lock.
    for (int attempt = 0; attempt < 5 && lockFd_ < 0; ++attempt) {
        const int fd = shm_open(lockName.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            message = "cannot create " + lockName + ": " + std::strerror(errno);
            umask(oldMask);
            return Result::SystemError;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            close(fd);
            if (err == EWOULDBLOCK) {
                MappedSegment running;
                std::string pid = "unknown pid";
                if (attachSegment(instance, true, running) == AttachError::None)
                    pid = "pid " + std::to_string(running->control.supervisorPid.load(std::memory_order_acquire));
                message = "instance \"" + std::string(instance) + "\" is already running (" + pid +
                          "); stop it first or choose another --instance";
                umask(oldMask);
                return Result::AlreadyRunning;
            }
            message = "cannot lock " + lockName + ": " + std::strerror(err);
            umask(oldMask);
            return Result::SystemError;
        }
        struct stat byFd {}, byPath {};
        const std::string path = "/dev/shm" + lockName;
        if (fstat(fd, &byFd) == 0 && stat(path.c_str(), &byPath) == 0 && byFd.st_ino == byPath.st_ino) {
            lockFd_ = fd;
        } else {
            close(fd);  // unlinked under us by a sustaind that was stopping; try again
        }
    }
    if (lockFd_ < 0) {
        message = "cannot take the lock " + lockName + " (it keeps changing)";
        umask(oldMask);
        return Result::SystemError;
    }

    // We hold the lock: from here on the instance is ours to create and to remove.
    instance_ = instance;

    // Any segment already there was left by a run that died.
    {
        MappedSegment stale;
        const AttachError found = attachSegment(instance, true, stale);
        if (found != AttachError::NotFound) {
            if (found == AttachError::None) reclaimedOwnerPid_ = stale->header.creatorPid;
            stale.reset();
            if (shm_unlink(segmentName.c_str()) == 0) reclaimedStale_ = true;
        }
    }

    const int fd = shm_open(segmentName.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    umask(oldMask);
    if (fd < 0) {
        message = "cannot create " + segmentName + ": " + std::strerror(errno);
        return Result::SystemError;
    }
    // posix_fallocate reserves every page now: on a full /dev/shm it fails here with ENOSPC,
    // where ftruncate alone would succeed and the first write to a missing page would be a
    // SIGBUS (MAP_POPULATE does not report it either).
    int sized = fchmod(fd, 0600) == 0 ? 0 : errno;
    if (sized == 0) sized = posix_fallocate(fd, 0, static_cast<off_t>(kSegmentSize));
    if (sized != 0) {
        message = "cannot reserve " + std::to_string(kSegmentSize) + " bytes for " + segmentName + ": " +
                  std::strerror(sized) + (sized == ENOSPC ? " (/dev/shm is full: free space there or enlarge it)" : "");
        close(fd);
        shm_unlink(segmentName.c_str());
        return Result::SystemError;
    }
    // Fault every page in now rather than in the audio callback.
    void* base = mmap(nullptr, kSegmentSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        message = "cannot map " + segmentName + ": " + std::strerror(errno);
        shm_unlink(segmentName.c_str());
        return Result::SystemError;
    }
    if (posix_madvise(base, kSegmentSize, POSIX_MADV_WILLNEED) != 0) { /* advisory only */ }
    std::memset(base, 0, kSegmentSize);
    auto* segment = new (base) Segment;  // all members are atomics or PODs; zero is their initial state
    mapping_.base_ = base;
    mapping_.size_ = kSegmentSize;
    initializeSegment(*segment, getpid());
    registerAllocation(*segment, RegistryKind::LockFile, lockName, 0, getpid());
    registerAllocation(*segment, RegistryKind::Segment, segmentName, kSegmentSize, getpid());
    if (reclaimedStale_) {
        message = "reclaimed a stale segment left by a run that did not stop cleanly";
        if (reclaimedOwnerPid_ != 0) message += " (pid " + std::to_string(reclaimedOwnerPid_) + ")";
        segment->supervisor.reclaimedSegments.fetch_add(1, std::memory_order_relaxed);
    }
    return Result::Created;
}

void SegmentOwner::remove() {
    // Only the holder of the lock may unlink: a sustaind refused as a second instance
    // must leave the running one's objects alone.
    if (instance_.empty() || lockFd_ < 0) return;
    mapping_.reset();
    shm_unlink(segmentObjectName(instance_).c_str());
    shm_unlink(lockObjectName(instance_).c_str());  // while still holding it: see create()
    close(lockFd_);
    lockFd_ = -1;
    instance_.clear();
}

}  // namespace sustain
