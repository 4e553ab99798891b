// Creating, attaching to and removing an instance's shared-memory segment.
//
// Names: instance "NAME" owns the POSIX shared-memory objects "/sustain-NAME" (the
// segment) and "/sustain-NAME.lock" (held with flock() by the running sustaind; it is what
// makes a second sustaind of the same instance refuse, and what tells a stale segment of
// a killed run from a live one). Both are created with mode 0600.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shm/layout.h"

namespace sustain {

/// Checks a name given from outside before it becomes part of a path: 1..32 characters
/// of [A-Za-z0-9_-], not starting with '-'. Returns an empty string when valid, else why not.
/// Thread: any.  RT-safe: no (may allocate the message).
std::string validateInstanceName(std::string_view instance);

/// "/sustain-NAME" and "/sustain-NAME.lock" for a valid instance name.
std::string segmentObjectName(std::string_view instance);
std::string lockObjectName(std::string_view instance);

/// "sustain-NAME-wG": the JACK client of the worker process sustaind started as the
/// engine's G-th (0 and 1 at the start). Every worker process has a name of its own, so
/// that one started while an earlier process of its slot is still known to JACK (a
/// prepared replacement, docs/failover.md) never collides with it; WorkerSlot's
/// clientGeneration says which name the process in a slot has.
std::string workerClientName(std::string_view instance, uint32_t generation);

enum class AttachError {
    None,
    InvalidName,
    NotFound,          // no engine of that instance runs
    PermissionDenied,
    ForeignOwner,      // owned by another user: never trusted
    BadMode,           // readable or writable by others: never trusted
    SizeMismatch,
    BadMagic,
    VersionMismatch,
    NotReady,          // created but not yet initialised (sustaind is starting)
    SystemError,
};

/// A mapping of a segment. Move-only; unmaps on destruction (never unlinks).
class MappedSegment {
public:
    MappedSegment() = default;
    MappedSegment(MappedSegment&& other) noexcept;
    MappedSegment& operator=(MappedSegment&& other) noexcept;
    MappedSegment(const MappedSegment&) = delete;
    MappedSegment& operator=(const MappedSegment&) = delete;
    ~MappedSegment();

    bool valid() const { return base_ != nullptr; }
    Segment& get() const { return *static_cast<Segment*>(base_); }
    Segment* operator->() const { return static_cast<Segment*>(base_); }
    void reset();

private:
    friend class SegmentOwner;
    friend AttachError attachSegment(std::string_view, bool, MappedSegment&, std::string*);
    void* base_ = nullptr;
    size_t size_ = 0;
};

/// A sentence for the user, with both sides of a mismatch when there is one.
std::string describe(AttachError error, std::string_view instance, const std::string& detail);

/// Maps an existing segment, read-write or read-only (PROT_READ), after checking owner,
/// mode, size, magic and layout version. On failure `detail` (if given) says what was found.
/// Thread: any non-RT thread.  RT-safe: no (open, fstat, mmap).
AttachError attachSegment(std::string_view instance, bool readOnly, MappedSegment& out,
                          std::string* detail = nullptr);

/// Owns an instance: holds its lock, creates a fresh segment (reclaiming a stale one
/// left by a killed run) and removes both on release. Used by sustaind only.
class SegmentOwner {
public:
    SegmentOwner() = default;
    SegmentOwner(const SegmentOwner&) = delete;
    SegmentOwner& operator=(const SegmentOwner&) = delete;
    ~SegmentOwner();

    enum class Result { Created, AlreadyRunning, InvalidName, SystemError };

    /// Takes the instance lock and creates the segment, zeroed and initialised with the
    /// header and registry; `message` explains any result but Created, and says when a
    /// stale segment was reclaimed. Thread: main.  RT-safe: no.
    Result create(std::string_view instance, std::string& message);

    /// Unlinks the segment and the lock object and releases the lock. Idempotent.
    void remove();

    Segment& segment() const { return mapping_.get(); }
    bool reclaimedStale() const { return reclaimedStale_; }
    int reclaimedOwnerPid() const { return reclaimedOwnerPid_; }

private:
    std::string instance_;
    int lockFd_ = -1;
    MappedSegment mapping_;
    bool reclaimedStale_ = false;
    int reclaimedOwnerPid_ = 0;
};

/// Adds an entry to the registry of allocations; false when the registry is full.
/// Thread: sustaind's main thread.  RT-safe: no.
bool registerAllocation(Segment& segment, RegistryKind kind, std::string_view name, uint64_t size, int ownerPid);

/// Initialises every region of a freshly zeroed segment and finally publishes `magic`.
/// Thread: the creator, before anyone attaches.  RT-safe: yes.
void initializeSegment(Segment& segment, int creatorPid);

}  // namespace sustain
