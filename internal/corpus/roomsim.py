"""Room simulation for scribe's test corpus (run by `scribe corpus render -room`).

Reads a JSON spec (argv[1]) naming a shoebox room, its RT60, a WAV file of dry tracks (one
channel per talker) with each talker's position, and the capsule positions of a
microphone array; writes two float32 WAV files
of the array's channels: the talkers as the capsules hear them (image-source method,
pyroomacoustics) and a spherically diffuse pink noise field of unit power per capsule
(independent pink noises mixed per frequency so that capsules i and j are correlated by
sinc(2 pi f d_ij / c), the coherence of an isotropic field). The caller sets the noise
level. Sabine's formula misjudges small rooms, so the absorption is corrected (at most
twice) until the RT60 measured on the simulated impulse responses is within 5 % of the
target. Prints one JSON line: the measured RT60 and the image-source order used.

This runs only when test audio is rendered, never inside scribe.
"""

import json
import sys

import numpy as np
import pyroomacoustics as pra
from scipy.io import wavfile

SPEED_OF_SOUND = 343.0


def read_tracks(path, rate):
    r, x = wavfile.read(path)
    if r != rate:
        raise SystemExit(f"roomsim: {path} is {r} Hz, want {rate}")
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x  # samples x talkers


def diffuse_pink(mics, n, rate, seed):
    """Unit-power pink noise with the coherence of a spherically isotropic field."""
    rng = np.random.default_rng(seed)
    m = mics.shape[1]
    spec = np.fft.rfft(rng.standard_normal((m, n)), axis=1)
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spec *= 1.0 / np.sqrt(np.maximum(f, 20.0))  # pink: power falls 3 dB an octave
    d = np.linalg.norm(mics[:, :, None] - mics[:, None, :], axis=0)  # m x m distances
    gamma = np.sinc(2.0 * f[:, None, None] * d[None] / SPEED_OF_SOUND)  # np.sinc(x) = sin(pi x)/(pi x)
    w, v = np.linalg.eigh(gamma)
    mix = v * np.sqrt(np.clip(w, 0.0, None))[:, None, :]  # mix @ mix^T = gamma, per bin
    spec = np.einsum("kij,jk->ik", mix, spec)
    out = np.fft.irfft(spec, n=n, axis=1)
    out /= np.sqrt(np.mean(out**2, axis=1, keepdims=True))
    return out


def build(spec, rt60, tracks, mics):
    absorption, max_order = pra.inverse_sabine(rt60, spec["dims"])
    room = pra.ShoeBox(spec["dims"], fs=spec["rate"], materials=pra.Material(absorption), max_order=max_order)
    for k, pos in enumerate(spec["positions"]):
        room.add_source(pos, signal=tracks[:, k])
    room.add_microphone_array(mics)
    room.compute_rir()
    return room, max_order


def main():
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    rate, target = spec["rate"], spec["rt60"]
    tracks = read_tracks(spec["tracks"], rate)
    if tracks.shape[1] != len(spec["positions"]):
        raise SystemExit(f"roomsim: {tracks.shape[1]} tracks for {len(spec['positions'])} positions")
    n = tracks.shape[0]
    mics = np.array(spec["mics"], dtype=np.float64).T  # 3 x capsules
    design = target
    for _ in range(3):
        room, max_order = build(spec, design, tracks, mics)
        measured = float(np.mean(room.measure_rt60()))
        if abs(measured - target) <= 0.05 * target:
            break
        design *= target / measured
    room.simulate()
    speech = room.mic_array.signals[:, :n]
    if speech.shape[1] < n:
        speech = np.pad(speech, ((0, 0), (0, n - speech.shape[1])))
    wavfile.write(spec["out_speech"], rate, speech.T.astype(np.float32))
    noise = diffuse_pink(mics, n, rate, spec["seed"])
    wavfile.write(spec["out_noise"], rate, noise.T.astype(np.float32))
    print(json.dumps({"measured_rt60": measured, "max_order": int(max_order), "pyroomacoustics": pra.__version__}))


if __name__ == "__main__":
    main()
