// The layout is a contract between processes: sizes and offsets are pinned here, so a
// change that forgets to bump kLayoutVersion fails this test. Attaching refuses segments
// of another version, size, magic, owner mode; names are validated.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "shm/layout.h"
#include "shm/segment.h"
#include "shm/seqlock.h"

using namespace sustain;

TEST_CASE("layout: sizes and offsets are pinned to the layout version") {
    CHECK(kLayoutVersion == 19);
    CHECK(sizeof(OscMetrics) == 640);
    CHECK(sizeof(Command) == 48);
    CHECK(sizeof(SegmentHeader) == 128);
    CHECK(sizeof(ControlBlock) == 64);
    CHECK(sizeof(EngineConfig) == 256);
    CHECK(sizeof(WorkerSlot) == 384);
    CHECK(sizeof(SupervisorMetrics) == 192);
    CHECK(sizeof(AudioBlock) == 8256);
    CHECK(sizeof(OutputMetrics) == 192);
    CHECK(sizeof(RingIndices) == 192);
    CHECK(sizeof(RenderState) == 1464);
    CHECK(offsetof(Segment, control) == 128);
    CHECK(offsetof(Segment, clock) == 192);
    CHECK(sizeof(FrameClock) == 192);
    CHECK(offsetof(Segment, config) == 384);
    CHECK(offsetof(Segment, slots) == 640);
    CHECK(offsetof(Segment, outputs) == 1408);
    CHECK(offsetof(Segment, params) == 2176);
    CHECK(offsetof(Segment, rings) == 2816);
    CHECK(offsetof(Segment, state) == 789632);
    CHECK(offsetof(Segment, audio) == 792704);
    CHECK(sizeof(AudioRing) == 16 * 8256);
    CHECK(offsetof(ControlBlock, epoch) == 8);
    CHECK(offsetof(WorkerSlot, callbacks) == 24);
    CHECK(sizeof(RenderHostSlot) == 256);
    CHECK(sizeof(HostsRegion) == 640);
    CHECK(offsetof(Segment, hosts) == kSegmentSize - sizeof(HostsRegion));
    CHECK(kSegmentSize == 1191040);
}

namespace {
constexpr const char* kInstance = "unit-layout-test";

void writeSegment(const std::string& name, uint64_t size, uint32_t magic, uint32_t version, mode_t mode) {
    shm_unlink(name.c_str());
    const int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(fchmod(fd, mode) == 0);
    REQUIRE(ftruncate(fd, static_cast<off_t>(size)) == 0);
    if (size >= sizeof(SegmentHeader)) {
        void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        REQUIRE(base != MAP_FAILED);
        auto* header = static_cast<SegmentHeader*>(base);
        header->layoutVersion = version;
        header->segmentSize = size;
        header->magic.store(magic);
        munmap(base, size);
    }
    close(fd);
}
}  // namespace

TEST_CASE("layout: attaching refuses another version, size, magic or mode, and says what it found") {
    const std::string name = segmentObjectName(kInstance);
    MappedSegment mapped;
    std::string detail;

    writeSegment(name, kSegmentSize, kLayoutMagic, kLayoutVersion + 1, 0600);
    CHECK(attachSegment(kInstance, true, mapped, &detail) == AttachError::VersionMismatch);
    CHECK(detail.find("layout version " + std::to_string(kLayoutVersion + 1)) != std::string::npos);
    CHECK(detail.find("expects " + std::to_string(kLayoutVersion)) != std::string::npos);
    CHECK(describe(AttachError::VersionMismatch, kInstance, detail).find("restart sustaind") != std::string::npos);

    writeSegment(name, kSegmentSize + 4096, kLayoutMagic, kLayoutVersion, 0600);
    CHECK(attachSegment(kInstance, true, mapped, &detail) == AttachError::SizeMismatch);

    writeSegment(name, kSegmentSize, 0x12345678, kLayoutVersion, 0600);
    CHECK(attachSegment(kInstance, true, mapped, &detail) == AttachError::BadMagic);

    writeSegment(name, kSegmentSize, kLayoutMagic, kLayoutVersion, 0644);
    CHECK(attachSegment(kInstance, true, mapped, &detail) == AttachError::BadMode);

    writeSegment(name, kSegmentSize, kLayoutMagic, kLayoutVersion, 0600);
    CHECK(attachSegment(kInstance, true, mapped, &detail) == AttachError::None);
    CHECK_FALSE(mapped.valid() == false);
    mapped.reset();

    shm_unlink(name.c_str());
    CHECK(attachSegment(kInstance, true, mapped, &detail) == AttachError::NotFound);
}

TEST_CASE("layout: instance names from outside are validated before they become paths") {
    CHECK(validateInstanceName("default").empty());
    CHECK(validateInstanceName("rig_2-b").empty());
    CHECK_FALSE(validateInstanceName("").empty());
    CHECK_FALSE(validateInstanceName("../etc").empty());
    CHECK_FALSE(validateInstanceName("a/b").empty());
    CHECK_FALSE(validateInstanceName("-x").empty());
    CHECK_FALSE(validateInstanceName(std::string(33, 'a')).empty());
    MappedSegment mapped;
    CHECK(attachSegment("../x", true, mapped) == AttachError::InvalidName);
}

TEST_CASE("layout: the owner refuses a second instance and reclaims a stale segment") {
    const std::string instance = "unit-owner-test";
    shm_unlink(segmentObjectName(instance).c_str());
    shm_unlink(lockObjectName(instance).c_str());
    std::string message;
    {
        SegmentOwner first;
        REQUIRE(first.create(instance, message) == SegmentOwner::Result::Created);
        CHECK_FALSE(first.reclaimedStale());
        SegmentOwner second;
        CHECK(second.create(instance, message) == SegmentOwner::Result::AlreadyRunning);
        CHECK(message.find("already running") != std::string::npos);
        second.remove();  // a refused owner must not remove the running instance's objects
        MappedSegment reader;
        CHECK(attachSegment(instance, true, reader) == AttachError::None);
        struct stat st {};
        CHECK(stat(("/dev/shm" + segmentObjectName(instance)).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    CHECK(access(("/dev/shm" + segmentObjectName(instance)).c_str(), F_OK) != 0);  // removed on release

    // A run killed with SIGKILL leaves its segment but not its lock: the next run reclaims it.
    writeSegment(segmentObjectName(instance), kSegmentSize, kLayoutMagic, kLayoutVersion, 0600);
    SegmentOwner next;
    REQUIRE(next.create(instance, message) == SegmentOwner::Result::Created);
    CHECK(next.reclaimedStale());
    CHECK(message.find("reclaimed") != std::string::npos);
    CHECK(next.segment().supervisor.reclaimedSegments.load() == 1);
}

TEST_CASE("seqlock: a reader gets the value written, never a torn one") {
    std::atomic<uint64_t> sequence{0};
    std::atomic<uint64_t> words[kRenderStateWords];
    RenderState written{};
    written.frame = 1234;
    written.voices[3].phase = 0.25;
    seqlockWrite(sequence, words, written);
    RenderState read{};
    REQUIRE(seqlockRead(sequence, words, read));
    CHECK(read.frame == 1234);
    CHECK(read.voices[3].phase == 0.25);
    sequence.store(sequence.load() + 1);  // a writer in the middle of a write
    CHECK_FALSE(seqlockRead(sequence, words, read, 4));
}

TEST_CASE("seqlock: a writer that died mid-write leaves nothing readable, and the next writer restores the parity") {
    std::atomic<uint64_t> sequence{0};
    std::atomic<uint64_t> words[kRenderStateWords];
    RenderState first{};
    first.frame = 1;
    seqlockWrite(sequence, words, first);
    // The writer dies between its two sequence stores, half of the words new.
    const uint64_t dead = seqlockBegin(sequence.load());
    sequence.store(dead);
    words[0].store(999);
    RenderState read{};
    CHECK_FALSE(seqlockRead(sequence, words, read, 4));  // never the torn value
    // The replacement writes: the sequence moves on from the odd value to an even one.
    RenderState second{};
    second.frame = 2;
    seqlockWrite(sequence, words, second);
    CHECK(sequence.load() % 2 == 0);
    CHECK(sequence.load() > dead);
    REQUIRE(seqlockRead(sequence, words, read));
    CHECK(read.frame == 2);
    // And the parity holds for good: the next write is readable too, and a write in
    // progress is not.
    second.frame = 3;
    seqlockWrite(sequence, words, second);
    REQUIRE(seqlockRead(sequence, words, read));
    CHECK(read.frame == 3);
    sequence.store(seqlockBegin(sequence.load()));
    CHECK_FALSE(seqlockRead(sequence, words, read, 4));
}

TEST_CASE("seqlockBegin: always odd, always past what it found") {
    for (uint64_t found : {0ull, 1ull, 2ull, 3ull, 1000ull, 1001ull}) {
        CHECK(seqlockBegin(found) % 2 == 1);
        CHECK(seqlockBegin(found) > found);
    }
}
