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

The checks are written as a probe and a verdict (:mod:`autograder.checks.common`). The probe calls the
student's function on signals made here (and on generators ``np.random.default_rng(seed)`` of its own)
and records what came back as plain values: the output waveforms (float32, cut to twice the input's
length, or to the expected length where nothing else is judged, with their true shape and dtype
beside them), and, where a check only needs to know whether two arrays are equal (an input after the
call, an original kept in the augmented set, two sets from the same seed), a SHA-256 digest of the
array's float64 samples. The verdict, run by the grader in its own process, makes the signals again,
recomputes the digests, SNRs, shifts, tempi and pitches, and judges; the noise of every add_noise
output it measures must also be independent of the clip (an output that is the clip rescaled, or
silence, has the right "noise" power but no noise). The augmented-set checks record every item's
label, source and effect, and of each copy a float16 excerpt (its middle 8192 samples); they do not
depend on the effects being right (a copy is traced to its clip by the dominant frequency of that
excerpt, which every effect, right or wrong, keeps within 20 %), so a mistake in an effect is not
charged twice.

The contract checks (check_add_noise_contract, check_time_shift_length) and
check_augment_set_deterministic judge facts only (shapes, dtypes, digests, equalities between calls):
a record of the right facts passes them whatever the samples are; the other checks of the same
function judge the samples.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np

from autograder.checks.common import plain, probe
from genrekit import config

SR = config.SAMPLE_RATE

ADD_NOISE = "genre.augment.add_noise"
TIME_SHIFT = "genre.augment.time_shift"
TIME_STRETCH = "genre.augment.time_stretch"
AUGMENT_SET = "genre.augment.augment_set"


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


# --- what a probe records, and how a verdict reads it back -------------------------------------------

def _digest(x) -> str:
    """Length and SHA-256 of an array's samples as float64: equal digests, equal arrays (exactly)."""
    arr = np.ascontiguousarray(plain(x, np.float64).reshape(-1), dtype="<f8")
    return f"{arr.size}:{hashlib.sha256(arr.tobytes()).hexdigest()}"


def _record_wave(rec: dict, key: str, out, limit: int, dtype=np.float32) -> None:
    """A student's waveform: its shape and dtype, and its samples (flattened, the first ``limit``)."""
    arr = plain(out)
    rec[f"{key}_shape"] = [int(d) for d in arr.shape]
    rec[f"{key}_dtype"] = arr.dtype.name
    rec[key] = arr.reshape(-1)[:limit].astype(dtype)


def _shape(rec, key: str) -> tuple:
    return tuple(int(d) for d in rec[f"{key}_shape"])


def _samples(rec, key: str) -> np.ndarray:
    return np.asarray(rec[key], dtype=np.float64).reshape(-1)


# --- add_noise ----------------------------------------------------------------------------------

def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (1 for a constant ``a``: no noise at all is not independent noise)."""
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt(np.sum(a ** 2) * np.sum(b ** 2))
    return float(np.sum(a * b) / denom) if denom > 0 else 1.0


def _follows(out: np.ndarray, y: np.ndarray) -> bool:
    """Whether a noisy copy still follows its clip (correlation above 0.05: an SNR above about -26 dB)."""
    a, b = out - out.mean(), y - y.mean()
    denom = np.sqrt(np.sum(a ** 2) * np.sum(b ** 2))
    return bool(denom > 0 and np.sum(a * b) / denom > 0.05)


def _noisy(rec, key: str, y: np.ndarray) -> np.ndarray:
    assert _shape(rec, key) == y.shape, \
        f"add_noise on {y.shape[0]} samples returned shape {_shape(rec, key)}: keep the shape"
    out = _samples(rec, key)
    assert out.shape == y.shape, f"add_noise on {y.shape[0]} samples returned shape {out.shape}: keep the shape"
    assert np.all(np.isfinite(out)), "add_noise returned NaN or infinite samples"
    assert abs(_correlation(out - y, y)) < 0.2, \
        "add_noise's noise follows the clip's own samples: add independent Gaussian noise drawn from rng"
    return out


def _measured_snr(rec, key: str, y: np.ndarray) -> float:
    """10 log10(P_signal / P_noise) of the output, with noise = output - input (no clipping at these levels)."""
    return _power_db(y) - _power_db(_noisy(rec, key, y) - y)


CONTRACT_DTYPES = (np.float32, np.float64)


def _contract_input(dtype) -> np.ndarray:
    return _coloured(12_345, -12.0, 1).astype(dtype)


def _loud() -> np.ndarray:
    return _square(0.5, 97.0, -1.0)  # low SNR on a loud clip: the sum exceeds full scale


@probe(ADD_NOISE)
def check_add_noise_contract(add_noise) -> dict:
    rec = {}
    for dtype in CONTRACT_DTYPES:
        name = np.dtype(dtype).name
        y = _contract_input(dtype)
        out = plain(add_noise(y, 8.0, np.random.default_rng(2)))
        rec[f"input_{name}"] = _digest(y)  # the input after the call
        rec[f"out_{name}_shape"] = [int(d) for d in out.shape]
        rec[f"out_{name}_dtype"] = out.dtype.name
    y = _loud()
    _record_wave(rec, "loud", add_noise(y.copy(), 0.0, np.random.default_rng(3)), 2 * len(y), np.float64)
    return rec


@check_add_noise_contract.verdict
def _add_noise_contract(rec) -> None:
    for dtype in CONTRACT_DTYPES:
        name = np.dtype(dtype).name
        y = _contract_input(dtype)
        assert rec[f"input_{name}"] == _digest(y), "add_noise modified its input in place: work on a new array"
        shape = _shape(rec, f"out_{name}")
        assert shape == y.shape, f"add_noise returned shape {shape} for input {y.shape}"
        got = rec[f"out_{name}_dtype"]
        assert got == "float32", f"add_noise should return float32 (for {name} input too), got {got}"
    out = _samples(rec, "loud")
    assert out.size > 0 and out.min() >= -1.0 and out.max() <= 1.0, \
        f"add_noise output reaches {np.abs(out).max(initial=0.0):.2f}: clip it to [-1, 1] as the contract says"


REPRODUCIBLE_CALLS = (("first", 77), ("again", 77), ("other", 78))


def _reproducible_input() -> np.ndarray:
    return _coloured(9_001, -17.0, 4)


@probe(ADD_NOISE)
def check_add_noise_reproducible(add_noise) -> dict:
    y = _reproducible_input()
    rec = {}
    for key, seed in REPRODUCIBLE_CALLS:
        _record_wave(rec, key, add_noise(y.copy(), 14.0, np.random.default_rng(seed)), 2 * len(y))
    rng = np.random.default_rng(5)  # two calls on one generator
    for key in ("a", "b"):
        _record_wave(rec, key, add_noise(y.copy(), 14.0, rng), 2 * len(y))
    return rec


@check_add_noise_reproducible.verdict
def _add_noise_reproducible(rec) -> None:
    y = _reproducible_input().astype(np.float64)
    outs = {}
    for key in ("first", "again", "other", "a", "b"):  # each output is the clip plus some noise
        out = outs[key] = _noisy(rec, key, y)
        assert _follows(out, y), "add_noise should return the clip plus noise: its output does not follow its input"
    first, again, other, a, b = (outs[k] for k in ("first", "again", "other", "a", "b"))
    assert np.array_equal(first, again), \
        "add_noise gave different noise for two generators in the same state: draw the noise from rng, not np.random"
    assert not np.allclose(first, other), \
        "add_noise gave the same noise for different seeds: draw the noise from the rng you are given"
    assert not np.allclose(a, b), "two calls with the same generator gave the same noise: draw it from rng itself"


def _level_clips():
    return [("quiet sine at -50 dBFS", _sine(2.0, 311.0, -50.0)),
            ("square wave at -18 dBFS", _square(2.0, 123.0, -18.0)),
            ("noise-like clip at -30 dBFS", _coloured(2 * SR + 7, -30.0, 6))]


@probe(ADD_NOISE)
def check_add_noise_level(add_noise) -> dict:
    rec = {}
    for i, (_, y) in enumerate(_level_clips()):
        for snr, seed in ((0.0, 11), (20.0, 12)):
            _record_wave(rec, f"out_{i}_{snr:g}", add_noise(y.copy(), snr, np.random.default_rng(seed)), 2 * len(y))
    return rec


@check_add_noise_level.verdict
def _add_noise_level(rec) -> None:
    clips = _level_clips()
    for i, (name, y) in enumerate(clips):  # at 0 dB the noise is exactly as loud as the clip, whatever the dB convention
        snr = _measured_snr(rec, f"out_{i}_0", y)
        assert abs(snr) < 0.5, (f"add_noise(snr_db=0) on a {name}: measured SNR {snr:+.1f} dB, expected 0: set the "
                                f"noise power from this clip's own power mean(y**2), not a fixed amplitude")
    snrs = [_measured_snr(rec, f"out_{i}_20", y) for i, (_, y) in enumerate(clips)]
    assert max(snrs) - min(snrs) < 0.5, (
        f"add_noise(snr_db=20) measured {', '.join(f'{s:.1f}' for s in snrs)} dB on clips at -50, -18 and -30 dBFS: "
        f"the SNR must not depend on the clip's level (noise power = clip power / 10**(snr_db/10))")


DB_CALLS = ((20.0, 21), (30.0, 22), (45.0, 22))


def _db_input() -> np.ndarray:
    return _sine(3.0, 523.25, -20.0)


@probe(ADD_NOISE)
def check_add_noise_db(add_noise) -> dict:
    y = _db_input()
    rec = {}
    for snr, seed in DB_CALLS:
        _record_wave(rec, f"out_{snr:g}", add_noise(y.copy(), snr, np.random.default_rng(seed)), 2 * len(y))
    return rec


@check_add_noise_db.verdict
def _add_noise_db(rec) -> None:
    y = _db_input()
    base = _measured_snr(rec, "out_20", y)
    for target in (30.0, 45.0):
        step = _measured_snr(rec, f"out_{target:g}", y) - base
        assert abs(step) > 0.5, f"add_noise gave the same noise power at snr_db=20 and {target:g}: use snr_db"
        assert abs(step - (target - 20.0)) < 0.5, (
            f"raising snr_db from 20 to {target:g} should lower the noise power by {target - 20:g} dB, yours by "
            f"{step:.1f} dB: the SNR is a power ratio, 10 ** (snr_db / 10) (not 20, an amplitude ratio)")


# --- time_shift ----------------------------------------------------------------------------------

SHIFTS = (0.5, -0.75, 0.123471, -0.3333)  # seconds; the last two are not whole samples (round, not int)


def _shift_input(seed: int) -> np.ndarray:
    return _coloured(2 * SR + 37, -14.0, seed)


@probe(TIME_SHIFT)
def check_time_shift_length(time_shift) -> dict:
    y = _shift_input(8)
    rec = {}
    for i, seconds in enumerate(SHIFTS):
        out = plain(time_shift(y, seconds, SR))
        rec[f"input_{i}"] = _digest(y)  # the input after the call
        rec[f"out_{i}_shape"] = [int(d) for d in out.shape]
        rec[f"out_{i}_dtype"] = out.dtype.name
    return rec


@check_time_shift_length.verdict
def _time_shift_length(rec) -> None:
    y = _shift_input(8)
    for i, seconds in enumerate(SHIFTS):
        assert rec[f"input_{i}"] == _digest(y), "time_shift modified its input in place: return a new array"
        shape = _shape(rec, f"out_{i}")
        assert shape == y.shape, \
            f"time_shift({seconds:g} s) of {len(y)} samples returned shape {shape}: the length must be kept"
        got = rec[f"out_{i}_dtype"]
        assert got == "float32", f"time_shift should return float32, got {got}"


def _shift_outputs(time_shift, seed: int) -> dict:
    y = _shift_input(seed)
    rec = {}
    for i, seconds in enumerate(SHIFTS):
        _record_wave(rec, f"out_{i}", time_shift(y.copy(), seconds, SR), 2 * len(y))
    return rec


@probe(TIME_SHIFT)
def check_time_shift_content(time_shift) -> dict:
    return _shift_outputs(time_shift, 9)


@check_time_shift_content.verdict
def _time_shift_content(rec) -> None:
    y = _shift_input(9).astype(np.float64)
    n = len(y)
    for i, seconds in enumerate(SHIFTS):
        s = round(seconds * SR)
        out = _samples(rec, f"out_{i}")
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


@probe(TIME_SHIFT)
def check_time_shift_circular(time_shift) -> dict:
    return _shift_outputs(time_shift, 10)


@check_time_shift_circular.verdict
def _time_shift_circular(rec) -> None:
    y = _shift_input(10).astype(np.float64)
    n = len(y)
    spectrum = np.fft.rfft(y)
    for i, seconds in enumerate(SHIFTS):
        out = _samples(rec, f"out_{i}")
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


@probe(TIME_STRETCH)
def check_time_stretch_duration(time_stretch) -> dict:
    rec = {}
    for i, (n, rate) in enumerate(STRETCHES):
        y = _tremolo(n)
        out = time_stretch(y, rate)
        rec[f"input_{i}"] = _digest(y)  # the input after the call
        _record_wave(rec, f"out_{i}", out, round(n / rate))
    return rec


@check_time_stretch_duration.verdict
def _time_stretch_duration(rec) -> None:
    for i, (n, rate) in enumerate(STRETCHES):
        assert rec[f"input_{i}"] == _digest(_tremolo(n)), "time_stretch modified its input in place: return a new array"
        expected = round(n / rate)
        shape = _shape(rec, f"out_{i}")
        assert shape == (expected,), \
            f"time_stretch of {n} samples at rate {rate:g}: expected round({n} / {rate:g}) = {expected} samples, got {shape}"
        got = rec[f"out_{i}_dtype"]
        assert got == "float32", f"time_stretch should return float32, got {got}"
        out = _samples(rec, f"out_{i}")
        assert out.shape == (expected,), f"time_stretch at rate {rate:g}: the record holds {out.size} samples"
        swells = _tremolo_hz(out)
        assert abs(swells / (TREMOLO_HZ * rate) - 1) < 0.05, (
            f"time_stretch at rate {rate:g}: a sound swelling {TREMOLO_HZ:g} times a second should swell "
            f"{TREMOLO_HZ * rate:g} times a second, yours {swells:.2f}: the music itself must play {rate:g}x as fast "
            f"(not just be cut or padded to the new length)")


PITCH_STRETCHES = STRETCHES[:2]


@probe(TIME_STRETCH)
def check_time_stretch_pitch(time_stretch) -> dict:
    rec = {}
    for i, (n, rate) in enumerate(PITCH_STRETCHES):
        _record_wave(rec, f"out_{i}", time_stretch(_tremolo(n), rate), 2 * n)
    return rec


@check_time_stretch_pitch.verdict
def _time_stretch_pitch(rec) -> None:
    for i, (n, rate) in enumerate(PITCH_STRETCHES):
        out = _samples(rec, f"out_{i}")
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
SET_ITEMS = 40       # items of a set recorded (the checks' sets have 5 to 20)
EXCERPT = 8192       # samples of each copy recorded, around its middle: enough to find its tone
KEYS_MESSAGE = "augment_set should return a dict with the keys 'waves', 'labels', 'sources', 'effects'"


def _set_inputs():
    # tones under a rising envelope: a circular shift of a pure tone by whole periods would give the
    # tone back unchanged, so a correct shifted copy could look like an effect that was never applied
    waves = [_sine(2.5 + 0.2 * i, f, -9.0 - 3 * i) for i, f in enumerate(SET_TONES_HZ)]
    waves = [(w * np.linspace(0.6, 1.0, len(w))).astype(np.float32) for w in waves]
    ids = [f"{config.GENRES[label]}/{config.GENRES[label]}.{40 + i:05d}.wav" for i, label in enumerate(SET_LABELS)]
    return waves, np.array(SET_LABELS, dtype=np.int64), ids


def _excerpt(y: np.ndarray) -> np.ndarray:
    start = max(0, (len(y) - EXCERPT) // 2)
    return y[start:start + EXCERPT]


def _text(x):
    """A student's source or effect as a plain value: a str as itself (cut to 200 characters), a number or
    None as itself, anything else as None."""
    if isinstance(x, str):
        return str.__str__(x)[:200]
    if x is None or type(x) in (bool, int, float):
        return x
    if isinstance(x, (np.bool_, np.integer, np.floating)):
        return x.item()
    return None


def _labels(x) -> np.ndarray:
    try:
        arr = plain(x)
    except AssertionError:  # a list of mixed objects: numbers if it can be
        arr = plain(x, np.float64)
    return (arr if arr.dtype.kind in "biuf" else arr.astype(np.float64)).reshape(-1)


def _run_set(augment_set, recipe: dict, seed: int, tag: str, excerpts: bool) -> dict:
    """Call augment_set on fresh copies of the inputs; the record of its result, keys prefixed by ``tag``."""
    waves, labels, ids = _set_inputs()
    result = augment_set([w.copy() for w in waves], labels.copy(), list(ids), copy.deepcopy(recipe), seed)
    try:
        parts = {key: result[key] for key in ("waves", "labels", "sources", "effects")}
    except (KeyError, TypeError, IndexError):
        return {f"{tag}_ok": False}
    items = list(parts["waves"])
    out_labels, sources, effects = _labels(parts["labels"]), list(parts["sources"]), list(parts["effects"])
    rec = {f"{tag}_ok": True, f"{tag}_n": len(items), f"{tag}_n_labels": len(out_labels),
           f"{tag}_n_sources": len(sources), f"{tag}_n_effects": len(effects),
           f"{tag}_labels": out_labels[:SET_ITEMS],
           f"{tag}_sources": [_text(v) for v in sources[:SET_ITEMS]],
           f"{tag}_effects": [_text(v) for v in effects[:SET_ITEMS]],
           f"{tag}_digests": [_digest(w) for w in items[:SET_ITEMS]]}
    if excerpts:  # of the copies (the items not marked 'original'), for the verdict to find their tone
        for i, w in enumerate(items[:SET_ITEMS]):
            if not (i < len(effects) and isinstance(effects[i], str) and str.__str__(effects[i]) == "original"):
                rec[f"{tag}_excerpt_{i}"] = _excerpt(plain(w, np.float64).reshape(-1)).astype(np.float16)
    return rec


def _set(rec, tag: str) -> dict:
    """A recorded set, read back (the student's lists as recorded, checked for type where used)."""
    assert rec[f"{tag}_ok"] is True, KEYS_MESSAGE
    out = {key: rec[f"{tag}_{key}"] for key in ("n", "n_labels", "n_sources", "n_effects")}
    assert all(type(v) is int for v in out.values()), "augment_set: the record's counts are not numbers"
    out.update(labels=np.asarray(rec[f"{tag}_labels"]).reshape(-1), sources=list(rec[f"{tag}_sources"]),
               effects=list(rec[f"{tag}_effects"]), digests=list(rec[f"{tag}_digests"]))
    assert out["labels"].dtype.kind in "biuf", "augment_set: the labels should be numbers"
    return out


def _run_recipes(augment_set, recipes, seed: int, excerpts: bool) -> dict:
    """The records of augment_set run on the check's clips with each recipe, tagged r0, r1, ..."""
    rec = {}
    for r, recipe in enumerate(recipes):
        rec.update(_run_set(augment_set, recipe, seed, f"r{r}", excerpts=excerpts))
    return rec


def _nearest_tone(y: np.ndarray) -> int:
    return int(np.argmin(np.abs(np.log(_peak_hz(y) / np.array(SET_TONES_HZ)))))


ORIGINALS_RECIPES = (SET_RECIPE, {**SET_RECIPE, "copies": 0})


@probe(AUGMENT_SET)
def check_augment_set_originals(augment_set) -> dict:
    return _run_recipes(augment_set, ORIGINALS_RECIPES, 7, excerpts=False)


@check_augment_set_originals.verdict
def _augment_set_originals(rec) -> None:
    waves, labels, ids = _set_inputs()
    for r, recipe in enumerate(ORIGINALS_RECIPES):
        out = _set(rec, f"r{r}")
        expected = len(waves) * (1 + recipe["copies"])
        assert out["n"] == expected, (
            f"augment_set returned {out['n']} waves for {len(waves)} clips and {recipe['copies']} copies each: "
            f"expected {expected} (the originals are kept, then the copies)")
        for i, y in enumerate(waves):
            assert i < len(out["digests"]) and out["digests"][i] == _digest(y), \
                f"item {i} should be original clip {i}, unchanged: the originals come first, in input order"
        assert out["n_labels"] >= len(waves) and len(out["labels"]) >= len(waves) and \
            np.array_equal(out["labels"][:len(waves)].astype(np.int64), labels), \
            "the labels of the originals (the first items) should be the input labels, in order"


PROVENANCE_RECIPES = (SET_RECIPE, SHIFT_ONLY)


@probe(AUGMENT_SET)
def check_augment_set_provenance(augment_set) -> dict:
    return _run_recipes(augment_set, PROVENANCE_RECIPES, 8, excerpts=True)


@check_augment_set_provenance.verdict
def _augment_set_provenance(rec) -> None:
    waves, labels, ids = _set_inputs()
    for r, recipe in enumerate(PROVENANCE_RECIPES):
        tag = f"r{r}"
        out = _set(rec, tag)
        n = out["n"]
        assert out["n_labels"] == out["n_sources"] == out["n_effects"] == n, (
            f"augment_set: {n} waves but {out['n_labels']} labels, {out['n_sources']} sources and "
            f"{out['n_effects']} effects: every item needs its label, source id and effect")
        assert n <= SET_ITEMS, f"augment_set returned {n} items for {len(waves)} clips and {recipe['copies']} copies each"
        assert len(out["labels"]) == len(out["sources"]) == len(out["effects"]) == len(out["digests"]) == n, \
            "augment_set: the record does not hold every item"
        enabled = [name for name in ("noise", "shift", "stretch") if name in recipe]
        originals = [_digest(w) for w in waves]
        copies = dict.fromkeys(ids, 0)
        for i, (label, source, effect, digest) in enumerate(zip(out["labels"], out["sources"], out["effects"],
                                                                out["digests"])):
            assert isinstance(source, str) and source in copies, \
                f"item {i}: source {source!r} is not one of the given clip ids: record the id of the clip it came from"
            k = ids.index(source)
            assert int(label) == labels[k], f"item {i} comes from {source} (label {labels[k]}) but has label {label}"
            assert isinstance(effect, str) and effect.split(), f"item {i}: effect {effect!r} should be a string"
            if effect == "original":
                assert digest == originals[k], f"item {i} is marked 'original' of {source} but is not that clip unchanged"
                continue
            copies[source] += 1
            assert effect.split()[0] in enabled, \
                f"item {i}: effect {effect!r} is not one of the recipe's enabled effects {enabled}"
            assert digest != originals[k], f"item {i} ({effect!r}) is identical to its source clip: apply the effect"
            excerpt = np.asarray(rec[f"{tag}_excerpt_{i}"], dtype=np.float64).reshape(-1)
            assert excerpt.size >= min(EXCERPT, 1024) and _nearest_tone(excerpt) == k, \
                f"item {i} is marked as a copy of {source} but comes from another clip"
        wrong = {s: c for s, c in copies.items() if c != recipe["copies"]}
        assert not wrong, (f"each clip should have {recipe['copies']} augmented copies, got "
                           + ", ".join(f"{c} of {s}" for s, c in wrong.items()))


DETERMINISTIC_RUNS = (("first", 123), ("again", 123), ("other", 124))


@probe(AUGMENT_SET)
def check_augment_set_deterministic(augment_set) -> dict:
    rec = {}
    for tag, seed in DETERMINISTIC_RUNS:
        rec.update(_run_set(augment_set, SET_RECIPE, seed, tag, excerpts=False))
    waves, labels, ids = _set_inputs()
    given = [w.copy() for w in waves]
    augment_set(given, labels.copy(), list(ids), copy.deepcopy(SET_RECIPE), 5)
    rec["inputs"] = [_digest(g) for g in given]  # the input waveforms after the call
    return rec


@check_augment_set_deterministic.verdict
def _augment_set_deterministic(rec) -> None:
    first, again, other = (_set(rec, tag) for tag, _ in DETERMINISTIC_RUNS)

    def same(a, b):
        return (a["n"] == b["n"] and a["n_labels"] == b["n_labels"] and a["effects"] == b["effects"]
                and a["sources"] == b["sources"] and np.array_equal(a["labels"], b["labels"])
                and a["digests"] == b["digests"])

    assert same(first, again), \
        "augment_set gave two different sets for the same seed: draw everything from np.random.default_rng(seed)"
    assert not same(first, other), "augment_set gave the same set for seeds 123 and 124: use the seed"
    fresh, _, _ = _set_inputs()
    assert list(rec["inputs"]) == [_digest(f) for f in fresh], "augment_set modified its input waveforms in place"
