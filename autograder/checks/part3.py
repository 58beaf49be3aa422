"""Hidden checks of part 3: white noise at a target SNR, time shift, time stretch, the augmented set.

Each check probes one idea on signals students have not seen. A wrong answer fails the check aimed at
its mistake and passes the others (tests/test_augment.py proves it for each listed mistake):

| check                          | idea                                                 |
|--------------------------------|------------------------------------------------------|
| check_add_noise_contract       | float32 out, same shape, input untouched, [-1, 1]    |
| check_add_noise_reproducible   | the noise comes from the given Generator             |
| check_add_noise_level          | noise power from the clip's own power (not fixed)    |
| check_add_noise_db             | SNR in power decibels (10 log10, not 20 log10)       |
| check_time_shift_length        | same length and dtype, input untouched               |
| check_time_shift_content       | moved by round(seconds * sr) samples, positive later |
| check_time_shift_circular      | what leaves one end comes back at the other          |
| check_time_stretch_duration    | round(n / rate) samples, tempo scaled by rate        |
| check_time_stretch_pitch       | pitch unchanged (no resampling)                      |
| check_augment_set_originals    | originals kept first and unchanged                   |
| check_augment_set_provenance   | sources, labels and effects true for every item      |
| check_augment_set_deterministic| same seed same set, other seed other set             |

Every student output is converted to plain numpy arrays (``np.asarray(..., dtype=...)``) before it is
compared. The augmented-set checks do not depend on the effects being right (a copy is traced to its
clip by its dominant frequency, which every effect, right or wrong, keeps within 20 %), so a mistake in
an effect is not charged twice.
"""

from __future__ import annotations

import numpy as np

from autograder.checks.common import hidden
from genrekit import config

SR = config.SAMPLE_RATE


# --- signals the students have not seen ---------------------------------------------------------

def _sine(seconds: float, freq: float, dbfs: float) -> np.ndarray:
    """A sine whose RMS level is ``dbfs`` dB relative to full scale (power 10 ** (dbfs / 10))."""
    t = np.arange(int(seconds * SR)) / SR
    return (np.sqrt(2) * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t + 0.3)).astype(np.float32)


def _square(seconds: float, freq: float, dbfs: float) -> np.ndarray:
    """A square wave at ``dbfs`` dBFS RMS (its amplitude; crest factor 1, the loudest shape there is)."""
    t = np.arange(int(seconds * SR)) / SR
    return (10 ** (dbfs / 20) * np.sign(np.sin(2 * np.pi * freq * t + 0.1) + 1e-9)).astype(np.float32)


def _coloured(n: int, dbfs: float, seed: int) -> np.ndarray:
    """Low-passed Gaussian noise at ``dbfs`` dBFS RMS: every sample different (shifts are unambiguous)."""
    x = np.random.default_rng(seed).standard_normal(n + 15)
    x = np.convolve(x, np.hanning(16), mode="valid")[:n]
    return (x / np.sqrt(np.mean(x ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def _power_db(x: np.ndarray) -> float:
    return 10 * np.log10(max(float(np.mean(np.asarray(x, dtype=np.float64) ** 2)), 1e-30))


def _peak_hz(y: np.ndarray, sr: float = SR) -> float:
    """Frequency of the largest peak of the Hann-windowed spectrum (zero-padded 4x)."""
    y = np.asarray(y, dtype=np.float64)
    n = 4 * len(y)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), n=n))
    return float(np.argmax(spectrum[1:]) + 1) * sr / n


# --- add_noise ----------------------------------------------------------------------------------

def _noisy(add_noise, y: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    out = np.asarray(add_noise(y.copy(), snr_db, np.random.default_rng(seed)), dtype=np.float64)
    assert out.shape == y.shape, f"add_noise on {y.shape[0]} samples returned shape {out.shape}: keep the shape"
    assert np.all(np.isfinite(out)), "add_noise returned NaN or infinite samples"
    return out


def _measured_snr(add_noise, y: np.ndarray, snr_db: float, seed: int) -> float:
    """10 log10(P_signal / P_noise) of the output, with noise = output - input (no clipping at these levels)."""
    return _power_db(y) - _power_db(_noisy(add_noise, y, snr_db, seed) - y)


@hidden
def check_add_noise_contract(add_noise) -> None:
    for dtype in (np.float32, np.float64):
        y = _coloured(12_345, -12.0, 1).astype(dtype)
        before = y.copy()
        out = add_noise(y, 8.0, np.random.default_rng(2))
        assert np.array_equal(y, before), "add_noise modified its input in place: work on a new array"
        assert np.shape(out) == y.shape, f"add_noise returned shape {np.shape(out)} for input {y.shape}"
        assert np.asarray(out).dtype == np.float32, \
            f"add_noise should return float32 (for {np.dtype(dtype).name} input too), got {np.asarray(out).dtype}"
    loud = _square(0.5, 97.0, -1.0)  # low SNR on a loud clip: the sum exceeds full scale
    out = np.asarray(add_noise(loud.copy(), 0.0, np.random.default_rng(3)), dtype=np.float64)
    assert out.min() >= -1.0 and out.max() <= 1.0, \
        f"add_noise output reaches {np.abs(out).max():.2f}: clip it to [-1, 1] as the contract says"


@hidden
def check_add_noise_reproducible(add_noise) -> None:
    y = _coloured(9_001, -17.0, 4)
    first = np.asarray(add_noise(y.copy(), 14.0, np.random.default_rng(77)), dtype=np.float64)
    again = np.asarray(add_noise(y.copy(), 14.0, np.random.default_rng(77)), dtype=np.float64)
    other = np.asarray(add_noise(y.copy(), 14.0, np.random.default_rng(78)), dtype=np.float64)
    assert np.array_equal(first, again), \
        "add_noise gave different noise for two generators in the same state: draw the noise from rng, not np.random"
    assert not np.allclose(first, other), \
        "add_noise gave the same noise for different seeds: draw the noise from the rng you are given"
    rng = np.random.default_rng(5)
    a = np.asarray(add_noise(y.copy(), 14.0, rng), dtype=np.float64)
    b = np.asarray(add_noise(y.copy(), 14.0, rng), dtype=np.float64)
    assert not np.allclose(a, b), "two calls with the same generator gave the same noise: draw it from rng itself"


@hidden
def check_add_noise_level(add_noise) -> None:
    clips = [("quiet sine at -50 dBFS", _sine(2.0, 311.0, -50.0)),
             ("square wave at -18 dBFS", _square(2.0, 123.0, -18.0)),
             ("noise-like clip at -30 dBFS", _coloured(2 * SR + 7, -30.0, 6))]
    for name, y in clips:  # at 0 dB the noise is exactly as loud as the clip, whatever the dB convention
        snr = _measured_snr(add_noise, y, 0.0, 11)
        assert abs(snr) < 0.5, (f"add_noise(snr_db=0) on a {name}: measured SNR {snr:+.1f} dB, expected 0: set the "
                                f"noise power from this clip's own power mean(y**2), not a fixed amplitude")
    snrs = [_measured_snr(add_noise, y, 20.0, 12) for _, y in clips]
    assert max(snrs) - min(snrs) < 0.5, (
        f"add_noise(snr_db=20) measured {', '.join(f'{s:.1f}' for s in snrs)} dB on clips at -50, -18 and -30 dBFS: "
        f"the SNR must not depend on the clip's level (noise power = clip power / 10**(snr_db/10))")


@hidden
def check_add_noise_db(add_noise) -> None:
    y = _sine(3.0, 523.25, -20.0)
    base = _measured_snr(add_noise, y, 20.0, 21)
    for target in (30.0, 45.0):
        step = _measured_snr(add_noise, y, target, 22) - base
        assert abs(step) > 0.5, f"add_noise gave the same noise power at snr_db=20 and {target:g}: use snr_db"
        assert abs(step - (target - 20.0)) < 0.5, (
            f"raising snr_db from 20 to {target:g} should lower the noise power by {target - 20:g} dB, yours by "
            f"{step:.1f} dB: the SNR is a power ratio, 10 ** (snr_db / 10) (not 20, an amplitude ratio)")


# --- time_shift ----------------------------------------------------------------------------------

SHIFTS = (0.5, -0.75, 0.123471, -0.3333)  # seconds; the last two are not whole samples (round, not int)


def _shifted(time_shift, y: np.ndarray, seconds: float) -> np.ndarray:
    return np.asarray(time_shift(y.copy(), seconds, SR), dtype=np.float64).reshape(-1)


@hidden
def check_time_shift_length(time_shift) -> None:
    y = _coloured(2 * SR + 37, -14.0, 8)
    for seconds in SHIFTS:
        before = y.copy()
        out = time_shift(y, seconds, SR)
        assert np.array_equal(y, before), "time_shift modified its input in place: return a new array"
        assert np.shape(out) == y.shape, \
            f"time_shift({seconds:g} s) of {len(y)} samples returned shape {np.shape(out)}: the length must be kept"
        assert np.asarray(out).dtype == np.float32, f"time_shift should return float32, got {np.asarray(out).dtype}"


@hidden
def check_time_shift_content(time_shift) -> None:
    y = _coloured(2 * SR + 37, -14.0, 9).astype(np.float64)
    n = len(y)
    for seconds in SHIFTS:
        s = round(seconds * SR)
        out = _shifted(time_shift, y.astype(np.float32), seconds)
        keep = n - abs(s)  # the part that does not wrap around: out[k + s] = y[k]
        got = out[max(s, 0):max(s, 0) + keep]
        want = y[max(-s, 0):max(-s, 0) + keep]
        if got.shape == want.shape and np.allclose(got, want, atol=1e-6):
            continue
        late = seconds > 0
        assert not (len(out) >= n and np.allclose(out[:n], np.roll(y, -s), atol=1e-6)), (
            f"time_shift({seconds:g} s) moved the content {'earlier' if late else 'later'}: "
            f"{'positive' if late else 'negative'} seconds should move it {'later' if late else 'earlier'}")
        raise AssertionError(f"time_shift({seconds:g} s) at {SR} Hz should move the content by round(seconds * sr) = "
                             f"{s} samples ({'later' if late else 'earlier'}): out[k + {s}] = y[k]")


@hidden
def check_time_shift_circular(time_shift) -> None:
    y = _coloured(2 * SR + 37, -14.0, 10).astype(np.float64)
    n = len(y)
    spectrum = np.fft.rfft(y)
    for seconds in SHIFTS:
        out = _shifted(time_shift, y.astype(np.float32), seconds)
        ok = len(out) >= n
        if ok:  # out[:n] must be a rotation of y: find the best rotation, then compare sample by sample
            corr = np.fft.irfft(np.fft.rfft(out[:n]) * np.conj(spectrum), n=n)
            ok = np.allclose(out[:n], np.roll(y, int(np.argmax(corr))), atol=1e-6)
        assert ok, (f"time_shift({seconds:g} s): the samples pushed past one end should come back at the other end "
                    f"(a circular shift, as the contract says), not be dropped or replaced by zeros")


# --- time_stretch --------------------------------------------------------------------------------

STRETCHES = ((64_000, 1.25), (64_003, 0.8), (64_000, 1.5), (64_004, 0.9))  # (samples, rate)
CARRIER_HZ, TREMOLO_HZ = 710.0, 2.0  # a slow swell survives any sensible vocoder window


def _tremolo(n: int) -> np.ndarray:
    """A 710 Hz tone whose loudness swells twice a second: the swells show the tempo, the tone the pitch."""
    t = np.arange(n) / SR
    return (0.35 * (0.55 + 0.45 * np.sin(2 * np.pi * TREMOLO_HZ * t)) * np.sin(2 * np.pi * CARRIER_HZ * t)
            ).astype(np.float32)


def _tremolo_hz(y: np.ndarray) -> float:
    """Rate of the loudness swells: peak of the spectrum of the 10 ms RMS envelope, below 20 Hz."""
    frame = SR // 100
    env = np.sqrt(np.mean(y[: len(y) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    env = env[5:-5] - env[5:-5].mean()  # the vocoder's first and last frames are fades
    n = 16 * len(env)
    spectrum = np.abs(np.fft.rfft(env * np.hanning(len(env)), n=n))
    freqs = np.fft.rfftfreq(n, d=1 / 100)
    band = (freqs > 0.5) & (freqs < 20)
    return float(freqs[band][np.argmax(spectrum[band])])


@hidden
def check_time_stretch_duration(time_stretch) -> None:
    for n, rate in STRETCHES:
        y = _tremolo(n)
        before = y.copy()
        out = time_stretch(y, rate)
        assert np.array_equal(y, before), "time_stretch modified its input in place: return a new array"
        expected = round(n / rate)
        assert np.shape(out) == (expected,), \
            f"time_stretch of {n} samples at rate {rate:g}: expected round({n} / {rate:g}) = {expected} samples, got {np.shape(out)}"
        assert np.asarray(out).dtype == np.float32, f"time_stretch should return float32, got {np.asarray(out).dtype}"
        swells = _tremolo_hz(np.asarray(out, dtype=np.float64))
        assert abs(swells / (TREMOLO_HZ * rate) - 1) < 0.05, (
            f"time_stretch at rate {rate:g}: a sound swelling {TREMOLO_HZ:g} times a second should swell "
            f"{TREMOLO_HZ * rate:g} times a second, yours {swells:.2f}: the music itself must play {rate:g}x as fast "
            f"(not just be cut or padded to the new length)")


@hidden
def check_time_stretch_pitch(time_stretch) -> None:
    for n, rate in STRETCHES[:2]:
        out = np.asarray(time_stretch(_tremolo(n), rate), dtype=np.float64).reshape(-1)
        assert len(out) > SR // 4, f"time_stretch at rate {rate:g} returned only {len(out)} samples"
        middle = out[len(out) // 8: len(out) - len(out) // 8]
        pitch = _peak_hz(middle)
        assert abs(pitch / CARRIER_HZ - 1) < 0.015, (
            f"time_stretch at rate {rate:g} moved a {CARRIER_HZ:g} Hz tone to {pitch:.0f} Hz: the pitch must not change. "
            f"Reading the samples faster or slower (np.interp, librosa.resample) is resampling, not a time stretch: "
            f"use a phase vocoder (librosa.effects.time_stretch)")


# --- augment_set ---------------------------------------------------------------------------------

SET_TONES_HZ = (220.0, 520.0, 1230.0, 2900.0, 6100.0)  # more than 2x apart: every effect keeps a copy nearest its own
SET_LABELS = (3, 0, 7, 3, 5)
SET_RECIPE = {"copies": 3, "noise": {"snr_db": [12.0, 28.0]}, "shift": {"max_seconds": 0.9},
              "stretch": {"rate": [0.87, 1.15]}}
SHIFT_ONLY = {"copies": 2, "shift": {"max_seconds": 0.4}}


def _set_inputs():
    # tones under a rising envelope: a circular shift of a pure tone by whole periods would give the
    # tone back unchanged, so a correct shifted copy could look like an effect that was never applied
    waves = [_sine(2.5 + 0.2 * i, f, -9.0 - 3 * i) for i, f in enumerate(SET_TONES_HZ)]
    waves = [(w * np.linspace(0.6, 1.0, len(w))).astype(np.float32) for w in waves]
    ids = [f"{config.GENRES[label]}/{config.GENRES[label]}.{40 + i:05d}.wav" for i, label in enumerate(SET_LABELS)]
    return waves, np.array(SET_LABELS, dtype=np.int64), ids


def _run_set(augment_set, recipe: dict, seed: int):
    """Call augment_set on fresh copies of the inputs; returns (inputs, result as plain types)."""
    waves, labels, ids = _set_inputs()
    result = augment_set([w.copy() for w in waves], labels.copy(), list(ids), dict(recipe), seed)
    try:
        parts = {key: result[key] for key in ("waves", "labels", "sources", "effects")}
    except (KeyError, TypeError, IndexError):
        raise AssertionError("augment_set should return a dict with the keys 'waves', 'labels', 'sources', 'effects'") from None
    plain = {"waves": [np.asarray(w, dtype=np.float64).reshape(-1) for w in parts["waves"]],
             "labels": np.asarray(parts["labels"]).reshape(-1),
             "sources": list(parts["sources"]), "effects": list(parts["effects"])}
    return (waves, labels, ids), plain


def _nearest_tone(y: np.ndarray) -> int:
    return int(np.argmin(np.abs(np.log(_peak_hz(y) / np.array(SET_TONES_HZ)))))


@hidden
def check_augment_set_originals(augment_set) -> None:
    for recipe in (SET_RECIPE, {**SET_RECIPE, "copies": 0}):
        (waves, labels, ids), out = _run_set(augment_set, recipe, 7)
        expected = len(waves) * (1 + recipe["copies"])
        assert len(out["waves"]) == expected, (
            f"augment_set returned {len(out['waves'])} waves for {len(waves)} clips and {recipe['copies']} copies each: "
            f"expected {expected} (the originals are kept, then the copies)")
        for i, (y, label) in enumerate(zip(waves, labels)):
            got = out["waves"][i]
            assert got.shape == y.shape and np.allclose(got, y, atol=1e-6), \
                f"item {i} should be original clip {i}, unchanged: the originals come first, in input order"
        assert len(out["labels"]) >= len(waves) and np.array_equal(out["labels"][:len(waves)].astype(np.int64), labels), \
            "the labels of the originals (the first items) should be the input labels, in order"


@hidden
def check_augment_set_provenance(augment_set) -> None:
    for recipe in (SET_RECIPE, SHIFT_ONLY):
        (waves, labels, ids), out = _run_set(augment_set, recipe, 8)
        n = len(out["waves"])
        assert len(out["labels"]) == len(out["sources"]) == len(out["effects"]) == n, (
            f"augment_set: {n} waves but {len(out['labels'])} labels, {len(out['sources'])} sources and "
            f"{len(out['effects'])} effects: every item needs its label, source id and effect")
        enabled = [name for name in ("noise", "shift", "stretch") if name in recipe]
        copies = dict.fromkeys(ids, 0)
        for i, (y, label, source, effect) in enumerate(zip(out["waves"], out["labels"], out["sources"], out["effects"])):
            assert isinstance(source, str) and source in copies, \
                f"item {i}: source {source!r} is not one of the given clip ids: record the id of the clip it came from"
            k = ids.index(source)
            assert int(label) == labels[k], f"item {i} comes from {source} (label {labels[k]}) but has label {label}"
            assert isinstance(effect, str) and effect.split(), f"item {i}: effect {effect!r} should be a string"
            if effect == "original":
                assert y.shape == waves[k].shape and np.allclose(y, waves[k], atol=1e-6), \
                    f"item {i} is marked 'original' of {source} but is not that clip unchanged"
                continue
            copies[source] += 1
            assert effect.split()[0] in enabled, \
                f"item {i}: effect {effect!r} is not one of the recipe's enabled effects {enabled}"
            assert not (y.shape == waves[k].shape and np.allclose(y, waves[k], atol=1e-7)), \
                f"item {i} ({effect!r}) is identical to its source clip: apply the effect"
            assert _nearest_tone(y) == k, f"item {i} is marked as a copy of {source} but comes from another clip"
        wrong = {s: c for s, c in copies.items() if c != recipe["copies"]}
        assert not wrong, (f"each clip should have {recipe['copies']} augmented copies, got "
                           + ", ".join(f"{c} of {s}" for s, c in wrong.items()))


@hidden
def check_augment_set_deterministic(augment_set) -> None:
    (waves, labels, ids), first = _run_set(augment_set, SET_RECIPE, 123)
    _, again = _run_set(augment_set, SET_RECIPE, 123)
    _, other = _run_set(augment_set, SET_RECIPE, 124)

    def same(a, b):
        return (len(a["waves"]) == len(b["waves"]) and a["effects"] == b["effects"] and a["sources"] == b["sources"]
                and np.array_equal(a["labels"], b["labels"])
                and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a["waves"], b["waves"])))

    assert same(first, again), \
        "augment_set gave two different sets for the same seed: draw everything from np.random.default_rng(seed)"
    assert not same(first, other), "augment_set gave the same set for seeds 123 and 124: use the seed"
    fresh, _, _ = _set_inputs()
    given = [w.copy() for w in fresh]
    augment_set(given, labels.copy(), list(ids), dict(SET_RECIPE), 5)
    assert all(np.array_equal(g, f) for g, f in zip(given, fresh)), "augment_set modified its input waveforms in place"
