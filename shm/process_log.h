// How every process of the engine logs: one line per event on stderr, named by instance and
// process; under systemd (JOURNAL_STREAM names our stderr) with the journal's priority
// prefix instead of a timestamp and colours, so that `journalctl -p warning` finds warnings.
#pragma once

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace sustain {

/// Whether stderr is the journal's stream: JOURNAL_STREAM ("device:inode") names it. A
/// child whose stderr was redirected elsewhere inherits the variable, hence the check.
inline bool stderrIsJournal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (stream == nullptr) return false;
    const std::string_view text(stream);
    const size_t colon = text.find(':');
    unsigned long long device = 0, inode = 0;
    if (colon == std::string_view::npos ||
        std::from_chars(text.data(), text.data() + colon, device).ec != std::errc() ||
        std::from_chars(text.data() + colon + 1, text.data() + text.size(), inode).ec != std::errc())
        return false;
    struct stat status {};
    return fstat(STDERR_FILENO, &status) == 0 && static_cast<unsigned long long>(status.st_dev) == device &&
           static_cast<unsigned long long>(status.st_ino) == inode;
}

/// "<3>" for errors, "<4>" warnings, "<6>" information, "<7>" debugging: sd-daemon(3)'s prefixes.
class JournalPriority final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& out) override {
        static constexpr char kPriority[] = {'7', '7', '6', '4', '3', '2', '6'};  // trace .. critical, off
        const char text[] = {'<', kPriority[static_cast<int>(message.level)], '>'};
        out.append(text, text + 3);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JournalPriority>(); }
};

/// The default logger of a process called `name` ("it-1/sustaind", "it-1/worker 0").
/// Thread: main, before any other thread logs.  RT-safe: no.
inline void setupProcessLogging(const std::string& name, const std::string& level) {
    spdlog::set_default_logger(spdlog::stderr_color_mt(name));
    if (stderrIsJournal()) {
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<JournalPriority>('*').set_pattern("%*[" + name + "] %v");
        spdlog::set_formatter(std::move(formatter));
    } else {
        spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [" + name + "] %v");
    }
    spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace sustain
