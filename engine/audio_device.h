// Choosing and opening the PortAudio output device.
#pragma once

#include <portaudio.h>

#include <string>

namespace sustain {

struct DeviceChoice {
    PaDeviceIndex index = paNoDevice;
    std::string name;      // "system (JACK Audio Connection Kit)"
    int channels = 0;      // 2, or 1 for a mono device
    std::string error;     // set when no device fits, with the fix
};

/// Picks the output device: `requested` matched exactly, then as a case-insensitive
/// substring of "name (host API)"; when empty, a running JACK server's device first (a
/// live rig that runs JACK wants the engine in its graph), else PortAudio's default.
/// Thread: main, after Pa_Initialize.  RT-safe: no.
DeviceChoice chooseOutputDevice(const std::string& requested);

/// Prints every output device, one line each, marking the automatic choice.
/// Thread: main, after Pa_Initialize.
void printOutputDevices();

/// Opens and starts a stream on `device` for ~100 ms, to prove it really plays (ALSA lists
/// devices that then fail to open on machines without a sound card). Returns "" on success.
std::string probeOutputDevice(const DeviceChoice& device, double sampleRate, unsigned long frames);

/// Silences libasound's own error printing (PortAudio probes many ALSA devices that do
/// not exist on a headless machine); our own messages say what matters.
void quietAlsaErrors();

}  // namespace sustain
