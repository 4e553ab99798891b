#include "engine/audio_device.h"

#include <alsa/asoundlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace sustain {

namespace {

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

std::string fullName(PaDeviceIndex index) {
    const PaDeviceInfo* info = Pa_GetDeviceInfo(index);
    const PaHostApiInfo* api = Pa_GetHostApiInfo(info->hostApi);
    return std::string(info->name) + " (" + (api != nullptr ? api->name : "?") + ")";
}

DeviceChoice makeChoice(PaDeviceIndex index) {
    const PaDeviceInfo* info = Pa_GetDeviceInfo(index);
    DeviceChoice choice;
    choice.index = index;
    choice.name = fullName(index);
    choice.channels = std::min(info->maxOutputChannels, 2);
    return choice;
}

void silentAlsaHandler(const char*, int, const char*, int, const char*, ...) {}

}  // namespace

void quietAlsaErrors() { snd_lib_error_set_handler(silentAlsaHandler); }

DeviceChoice chooseOutputDevice(const std::string& requested) {
    const PaDeviceIndex count = Pa_GetDeviceCount();
    if (!requested.empty()) {
        for (PaDeviceIndex i = 0; i < count; ++i) {
            const PaDeviceInfo* info = Pa_GetDeviceInfo(i);
            if (info->maxOutputChannels > 0 && requested == info->name) return makeChoice(i);
        }
        const std::string wanted = lower(requested);
        for (PaDeviceIndex i = 0; i < count; ++i) {
            const PaDeviceInfo* info = Pa_GetDeviceInfo(i);
            if (info->maxOutputChannels > 0 && lower(fullName(i)).find(wanted) != std::string::npos)
                return makeChoice(i);
        }
        DeviceChoice none;
        none.error = "--device \"" + requested + "\": no output device matches (sustaind --list-devices shows them)";
        return none;
    }
    const PaHostApiIndex jack = Pa_HostApiTypeIdToHostApiIndex(paJACK);
    if (jack >= 0) {
        const PaHostApiInfo* api = Pa_GetHostApiInfo(jack);
        if (api != nullptr && api->defaultOutputDevice != paNoDevice) return makeChoice(api->defaultOutputDevice);
    }
    const PaDeviceIndex fallback = Pa_GetDefaultOutputDevice();
    if (fallback != paNoDevice) return makeChoice(fallback);
    DeviceChoice none;
    none.error = "no audio output device found: start a JACK server (tools/run starts a private one with the "
                 "dummy driver on machines without a sound card) or connect a sound card";
    return none;
}

void printOutputDevices() {
    const DeviceChoice automatic = chooseOutputDevice("");
    const PaDeviceIndex count = Pa_GetDeviceCount();
    for (PaDeviceIndex i = 0; i < count; ++i) {
        const PaDeviceInfo* info = Pa_GetDeviceInfo(i);
        if (info->maxOutputChannels <= 0) continue;
        std::printf("%s %3d  %-48s  %2d out  %6.0f Hz\n", i == automatic.index ? "*" : " ", i, fullName(i).c_str(),
                    info->maxOutputChannels, info->defaultSampleRate);
    }
    if (automatic.index == paNoDevice) std::printf("%s\n", automatic.error.c_str());
}

namespace {
int silenceCallback(const void*, void* output, unsigned long frames, const PaStreamCallbackTimeInfo*,
                    PaStreamCallbackFlags, void* userData) {
    const int channels = *static_cast<int*>(userData);
    std::fill_n(static_cast<float*>(output), frames * static_cast<unsigned long>(channels), 0.0f);
    return paContinue;
}
}  // namespace

std::string probeOutputDevice(const DeviceChoice& device, double sampleRate, unsigned long frames) {
    if (device.index == paNoDevice) return device.error;
    PaStreamParameters output{};
    output.device = device.index;
    output.channelCount = device.channels;
    output.sampleFormat = paFloat32;
    output.suggestedLatency = Pa_GetDeviceInfo(device.index)->defaultLowOutputLatency;
    PaStream* stream = nullptr;
    int channels = device.channels;
    PaError error = Pa_OpenStream(&stream, nullptr, &output, sampleRate, frames, paClipOff, silenceCallback, &channels);
    if (error == paNoError) error = Pa_StartStream(stream);
    if (error == paNoError) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        Pa_StopStream(stream);
    }
    if (stream != nullptr) Pa_CloseStream(stream);
    if (error != paNoError) return device.name + ": " + Pa_GetErrorText(error);
    return {};
}

}  // namespace sustain
