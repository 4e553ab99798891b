// Zeroconf in a build without it (meson -Dzeroconf=disabled): the engine runs the same,
// and --zeroconf is refused with the reason.
#include "supervisor/zeroconf.h"

namespace sustain {

std::string defaultZeroconfName(const std::string& instance) { return "sustain (" + instance + ")"; }

bool validZeroconfName(const std::string&, std::string& error) {
    error = "this sustaind was built without Zeroconf (meson -Dzeroconf=disabled): --zeroconf is not available";
    return false;
}

bool zeroconfScopeFor(const std::string&, ZeroconfScope&, std::string& error) {
    error = "this sustaind was built without Zeroconf";
    return false;
}

ZeroconfAdvertiser::ZeroconfAdvertiser(ZeroconfOptions options) : options_(std::move(options)) {}

ZeroconfAdvertiser::~ZeroconfAdvertiser() = default;

bool ZeroconfAdvertiser::start(std::string& error) { return validZeroconfName(options_.name, error); }

void ZeroconfAdvertiser::stop() {}

}  // namespace sustain
