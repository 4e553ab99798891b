// A segment in this process's memory, initialised as sustaind does: for unit tests of the
// code that reads and writes it, without shared memory.
#pragma once

#include <unistd.h>

#include <memory>

#include "shm/segment.h"

namespace sustain {

inline std::unique_ptr<Segment> makeSegment() {
    auto segment = std::make_unique<Segment>();
    initializeSegment(*segment, getpid());
    return segment;
}

}  // namespace sustain
