# Shared by tools/run, tools/test and tools/bench: install what is missing, build.
# Sourced, not executed.

SUSTAIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUSTAIN_BUILD="${SUSTAIN_BUILD:-$SUSTAIN_ROOT/build}"
SUSTAIN_MESON_ARGS=()  # extra `meson setup` options for a new build directory

# Debian 12 packages the project builds, runs and tests with.
SUSTAIN_PACKAGES=(
  meson ninja-build pkg-config g++ cmake python3
  portaudio19-dev libasound2-dev liblo-dev liblo-tools libreaderwriterqueue-dev
  libspdlog-dev doctest-dev libcli11-dev nlohmann-json3-dev libsndfile1-dev
  jackd2 libjack-jackd2-dev libncurses-dev tmux
  libtomlplusplus-dev libsystemd-dev libavahi-client-dev avahi-daemon avahi-utils dbus
  supercollider-language supercollider-server iproute2
  puredata-core stress-ng help2man
)

# What the tests need besides (tools/test installs them): matplotlib for tools/report, and a
# browser that renders its page headless (tests/integration/test_report.py).
SUSTAIN_TEST_PACKAGES=(python3-matplotlib chromium)

say() { printf 'sustain: %s\n' "$*" >&2; }

# Installs the packages that are missing, as root or through sudo; quick when none is.
sustain_install_packages() { sustain_ensure_packages "${SUSTAIN_PACKAGES[@]}"; }

# Installs those of the Debian packages named that are missing.
sustain_ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing missing Debian packages: ${missing[*]}"
  sustain_apt_install "${missing[@]}"
}

# Installs the Debian packages named, as root or through sudo.
sustain_apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "need root or sudo to install: $*"; return 1; }
    sudo="sudo"
  fi
  # jackd2 asks whether to enable real-time priority; keep the default without asking.
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null 2>&1
    $sudo apt-get install -y --no-install-recommends "$@"
  }
}

# The `osc` package from npm (the library Open Stage Control is built on), for the test of
# a Node.js client (tests/integration/test_node_osc.py). It goes into the build directory,
# so that the test itself never needs the network; quick when it is already there. Node and
# npm come from Debian only when the commands are missing: a Node.js installed another way
# (bundling its own npm) is used as it is.
SUSTAIN_NODE_OSC_VERSION=2.4.5
sustain_install_node() {
  local missing=() prefix="$SUSTAIN_BUILD/node"
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing missing Debian packages: ${missing[*]}"
    sustain_apt_install "${missing[@]}" || return 1
  fi
  local installed
  installed="$(node -p 'require(process.argv[1]).version' "$prefix/node_modules/osc/package.json" 2>/dev/null)" || true
  [ "$installed" = "$SUSTAIN_NODE_OSC_VERSION" ] && return 0
  say "installing osc@$SUSTAIN_NODE_OSC_VERSION from npm into $prefix"
  # Without the optional serialport: a native module the UDP client does not use.
  npm install --prefix "$prefix" --no-audit --no-fund --omit=optional --save-exact "osc@$SUSTAIN_NODE_OSC_VERSION" >/dev/null || {
    say "npm could not install osc@$SUSTAIN_NODE_OSC_VERSION (is the npm registry reachable?)"
    return 1
  }
}

# Configures (once) and builds into $SUSTAIN_BUILD.
sustain_build() {
  if [ ! -f "$SUSTAIN_BUILD/build.ninja" ]; then
    meson setup "$SUSTAIN_BUILD" "$SUSTAIN_ROOT" "${SUSTAIN_MESON_ARGS[@]}" >/dev/null || return 1
  fi
  ninja -C "$SUSTAIN_BUILD" >/dev/null || ninja -C "$SUSTAIN_BUILD"
}

# Starts a private JACK server with the dummy driver and monitor ports, named $1.
# Sets SUSTAIN_JACKD_PID; the caller stops it.
sustain_start_dummy_jack() {
  local name="$1" rate="${2:-48000}" frames="${3:-64}"
  # Its own session: a Ctrl-C in the terminal must reach sustaind (which fades out), not jackd.
  # 256 ports (qjackctl's default, JACK2's is 2048): every client that opens scans all of the
  # server's port slots once, and a replacement worker pays that before it can play.
  setsid jackd -n "$name" -R --port-max 256 -d dummy -r "$rate" -p "$frames" -m >"${TMPDIR:-/tmp}/sustain-jackd-$name.log" 2>&1 &
  SUSTAIN_JACKD_PID=$!
  local i
  for i in $(seq 1 100); do
    JACK_DEFAULT_SERVER="$name" jack_lsp >/dev/null 2>&1 && return 0
    kill -0 "$SUSTAIN_JACKD_PID" 2>/dev/null || break
    sleep 0.05
  done
  say "the JACK dummy server did not start; see ${TMPDIR:-/tmp}/sustain-jackd-$name.log"
  return 1
}

# Selects the sanitizer build for $1 (address,undefined or thread): sets SUSTAIN_BUILD and
# SUSTAIN_MESON_ARGS, and exports the runtime options under which every process writes its
# reports to $SUSTAIN_SANITIZER_REPORTS (emptied here).
sustain_use_sanitizer() {
  local sanitize="$1"
  case "$sanitize" in
    address,undefined|address|undefined) SUSTAIN_BUILD="$SUSTAIN_ROOT/build-asan" ;;
    thread) SUSTAIN_BUILD="$SUSTAIN_ROOT/build-tsan" ;;
    *) say "--sanitize: expected address,undefined or thread, got '$sanitize'"; return 2 ;;
  esac
  SUSTAIN_MESON_ARGS=(-Db_sanitize="$sanitize" -Db_lundef=false)
  export SUSTAIN_SANITIZER="$sanitize"
  export SUSTAIN_SANITIZER_REPORTS="$SUSTAIN_BUILD/sanitizer-reports"
  rm -rf "$SUSTAIN_SANITIZER_REPORTS"
  mkdir -p "$SUSTAIN_SANITIZER_REPORTS"
  local reports="$SUSTAIN_SANITIZER_REPORTS" supp="$SUSTAIN_ROOT/tests/sanitizers"
  # handle_segv=0: the chaos tests crash workers on purpose; the supervisor must see the
  # signal, not a sanitizer's report of it. verify_asan_link_order=0: the fault injector
  # is preloaded. Leaks are checked at every clean exit (third-party ones suppressed).
  export ASAN_OPTIONS="log_path=$reports/asan:handle_segv=0:handle_abort=0:verify_asan_link_order=0:detect_leaks=1"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=0"
  export TSAN_OPTIONS="log_path=$reports/tsan:suppressions=$supp/tsan.supp:second_deadlock_stack=1:handle_segv=0:handle_abort=0"
}
