#!/usr/bin/env bash
# engine/rt/ is everything the audio callback can reach: it must not even include what
# could lock, allocate behind our back, log or do I/O. A cheap check that a newcomer's
# innocent `#include <mutex>` fails CI, before any test has to catch it at run time.
# The render hosts' callbacks and what they reach (hosts/, docs/hosts.md) are held to the same.
set -euo pipefail
rt_files=("$1"/engine/rt/*.h "$1"/engine/rt/*.cpp "$1"/hosts/block_label.h "$1"/hosts/tagged_render.h
          "$1"/hosts/tagged_render.cpp "$1"/hosts/render_callback.h "$1"/hosts/render_callback.cpp
          "$1"/hosts/host_output_callback.h "$1"/hosts/host_output_callback.cpp)
forbidden='#include <(mutex|shared_mutex|condition_variable|thread|future|iostream|fstream|sstream|string|vector|map|unordered_map|list|deque|functional|regex|filesystem|chrono)>|spdlog|printf|std::cout|std::cerr|malloc|new |delete |throw |std::string|std::vector|usleep|sleep_for'
status=0
while IFS= read -r line; do
  echo "forbidden in real-time code: $line"
  status=1
done < <(grep -nE "$forbidden" "${rt_files[@]}" | grep -vE '^\S+:[0-9]+:\s*//' || true)
[ $status -eq 0 ] && echo "engine/rt/ and the render hosts' callbacks: no forbidden includes or calls"
exit $status
