"""Part 3: offline data augmentation (white noise at a target SNR, time shift, time stretch).

Each effect changes the sound but keeps the genre, so an effect applied to a training clip gives a new
training example. "Offline": the augmented copies are made once, before training, stored (the toolkit's
``genrekit.augcache.augmented`` writes them to disk) and mixed into the training set. Only training
clips may be augmented: a copy of a validation or test clip in the training set is leakage.

The recipe says which effects are used, with which parameter ranges, and how many copies per clip::

    recipe = {
        "copies": 2,                          # augmented copies per clip (int >= 0), originals kept too
        "noise": {"snr_db": [10.0, 30.0]},    # white noise, SNR drawn uniformly in [low, high] dB
        "shift": {"max_seconds": 2.0},        # circular shift, seconds drawn uniformly in [-max, +max]
        "stretch": {"rate": [0.85, 1.2]},     # time stretch, rate drawn uniformly in [low, high]
    }

A missing effect key disables that effect; each copy gets exactly one effect, drawn among the enabled
ones (see :func:`augment_set` for the order of the random draws).
"""

from __future__ import annotations

import numbers

import librosa
import numpy as np

from genrekit import config

EFFECTS = ("noise", "shift", "stretch")  # the effect names, in the order used to index random draws

DEFAULT_RECIPE = {
    "copies": 2,                          # augmented copies per training clip (the originals are kept too)
    "noise": {"snr_db": [10.0, 30.0]},    # dB; 10 dB is clearly audible hiss, 30 dB barely
    "shift": {"max_seconds": 2.0},        # seconds, both directions
    "stretch": {"rate": [0.85, 1.2]},     # > 1 faster (shorter), < 1 slower (longer); about -15 % .. +20 % tempo
}


# --- input checks (provided) ----------------------------------------------------------------------

def _waveform(y, name: str = "y") -> np.ndarray:
    """``y`` as a 1-D array of finite samples, or a one-line ValueError naming ``name``."""
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D waveform (samples,), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{name}: expected float samples in [-1, 1], got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: contains NaN or infinite samples")
    return y


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def _range(value, name: str, positive: bool = False) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name}: expected [low, high], got {value!r}")
    low, high = (_finite(v, name) for v in value)
    if low > high or (positive and low <= 0):
        raise ValueError(f"{name}: expected [low, high] with {'0 < ' if positive else ''}low <= high, got {value!r}")
    return [low, high]


def check_recipe(recipe: dict) -> dict:
    """Validate a recipe (format in the module docstring); returns a normalised copy.

    Raises a one-line ValueError naming the key: unknown keys, ``copies`` not an int >= 0, a range that
    is not [low, high] with low <= high, a stretch rate <= 0, a negative shift, or copies > 0 with no
    effect enabled.
    """
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe: expected a dict like DEFAULT_RECIPE, got {type(recipe).__name__}")
    unknown = sorted(set(recipe) - {"copies", *EFFECTS})
    if unknown:
        raise ValueError(f"recipe: unknown key(s) {unknown} (expected 'copies' and any of {list(EFFECTS)})")
    copies = recipe.get("copies")
    if isinstance(copies, bool) or not isinstance(copies, numbers.Integral) or copies < 0:
        raise ValueError(f"recipe['copies']: expected an int >= 0, got {copies!r}")
    out: dict = {"copies": int(copies)}
    if "noise" in recipe:
        out["noise"] = {"snr_db": _range(dict(recipe["noise"]).get("snr_db"), "recipe['noise']['snr_db']")}
    if "shift" in recipe:
        max_seconds = _finite(dict(recipe["shift"]).get("max_seconds"), "recipe['shift']['max_seconds']")
        if max_seconds < 0:
            raise ValueError(f"recipe['shift']['max_seconds']: expected >= 0, got {max_seconds}")
        out["shift"] = {"max_seconds": max_seconds}
    if "stretch" in recipe:
        out["stretch"] = {"rate": _range(dict(recipe["stretch"]).get("rate"), "recipe['stretch']['rate']",
                                         positive=True)}
    if out["copies"] > 0 and not any(name in out for name in EFFECTS):
        raise ValueError(f"recipe: copies = {out['copies']} but no effect enabled (add any of {list(EFFECTS)})")
    return out


# --- the three effects ----------------------------------------------------------------------------

def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise at a target signal-to-noise ratio.

    Args:
        y: waveform, shape (samples,), float (float32 or float64), values in [-1, 1]. Not modified.
        snr_db: target SNR in decibels of *power*: SNR = 10 log10(P_signal / P_noise), where
            P_signal = mean(y ** 2) is the power of this clip (so a quiet clip gets quiet noise and a loud
            clip loud noise) and P_noise the variance of the noise. 0 dB: noise as loud as the music;
            +10 dB: noise power 10x smaller; +20 dB: 100x smaller.
        rng: a ``np.random.Generator`` (e.g. ``np.random.default_rng(seed)``): draw the noise from it,
            never from the global ``np.random``, so that the same generator state gives the same output.

    Returns:
        y + noise, float32, shape (samples,) (a new array), with noise ~ Normal(0, P_noise) independent
        per sample; the sum is then clipped to [-1, 1] (at low SNR on loud clips some samples would
        exceed full scale; clipping is what writing them to a 16-bit file would do anyway).
    Raises ValueError (one line, naming the argument) for a non-1-D, non-float or non-finite ``y``, a
    silent ``y`` (zero power: the SNR is undefined), a non-finite ``snr_db`` (NaN, +-inf) or an ``rng``
    that is not a Generator.
    Hint: 10 ** (snr_db / 10) is the power ratio; the noise's standard deviation is the square root of
    its power; rng.standard_normal(n) draws n samples of Normal(0, 1).
    """
    y = _waveform(y, "y")
    snr_db = _finite(snr_db, "snr_db")
    if not np.any(y):
        raise ValueError("y: silent clip (zero power): the SNR is undefined")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a np.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    ### BEGIN SOLUTION
    signal_power = np.mean(y.astype(np.float64) ** 2)
    noise_power = signal_power / 10 ** (snr_db / 10)
    noise = np.sqrt(noise_power) * rng.standard_normal(len(y))
    return np.clip(y + noise, -1.0, 1.0).astype(np.float32)
    ### END SOLUTION


def time_shift(y: np.ndarray, seconds: float, sr: int = config.SAMPLE_RATE) -> np.ndarray:
    """Shift a clip in time by a number of seconds, circularly (what leaves at one end comes back at
    the other).

    Args:
        y: waveform, shape (samples,), float, sampled at ``sr`` Hz. Not modified.
        seconds: the shift; positive moves the content *later* (delays it), negative earlier. In samples
            the shift is s = round(seconds * sr) (Python's round).
        sr: sample rate in Hz (default ``config.SAMPLE_RATE``).

    Returns:
        float32 array of the same shape: out[(k + s) % samples] = y[k] for every k. For s > 0 the last s
        samples of ``y`` come first, followed by y[:-s].
    Why circular and not padded: a GTZAN excerpt is cut out of a longer piece whose texture is steady,
    so wrapping its end around keeps the sound music everywhere; zero padding would insert up to
    several seconds of digital silence, which no real clip contains, and which a network could learn as
    a cue of "augmented". The length is kept, so segments (part 2) still cover the whole clip.
    Raises ValueError (one line) naming ``seconds`` when it is not finite or when |s| >= samples (a
    shift by the whole clip or more), and naming ``y`` for a non-1-D, non-float or non-finite waveform.
    Hint: np.roll.
    """
    y = _waveform(y, "y")
    seconds = _finite(seconds, "seconds")
    if abs(round(seconds * sr)) >= len(y):
        raise ValueError(f"seconds: a shift of {seconds:g} s is not shorter than the clip ({len(y) / sr:.3f} s)")
    ### BEGIN SOLUTION
    return np.roll(y, round(seconds * sr)).astype(np.float32)
    ### END SOLUTION


def time_stretch(y: np.ndarray, rate: float) -> np.ndarray:
    """Play a clip faster or slower without changing its pitch.

    Args:
        y: waveform, shape (samples,), float, any sample rate. Not modified.
        rate: speed factor, > 0: 2.0 plays twice as fast (half the duration), 0.5 half as fast; the
            duration is divided by ``rate``, the pitch (the frequencies in the sound) is unchanged.

    Returns:
        float32 array of exactly round(len(y) / rate) samples (Python's round), clipped to [-1, 1]
        (the resynthesis may overshoot the input's peak a little).
    Raises ValueError (one line) naming ``rate`` when it is <= 0, NaN or infinite, and naming ``y`` for a
    non-1-D, non-float or non-finite waveform.
    Hint: librosa.effects.time_stretch(y, rate=rate) (a phase vocoder: it spaces the STFT frames
    differently and fixes their phases) may be used; check the length it returns. Resampling (reading the
    waveform faster or slower, as np.interp or librosa.resample would) changes the pitch by ``rate``:
    that is not a time stretch.
    """
    y = _waveform(y, "y")
    rate = _finite(rate, "rate")
    if rate <= 0:
        raise ValueError(f"rate: expected a stretch rate > 0, got {rate:g}")
    ### BEGIN SOLUTION
    out = librosa.effects.time_stretch(y.astype(np.float32), rate=rate)
    out = librosa.util.fix_length(out, size=round(len(y) / rate))
    return np.clip(out, -1.0, 1.0).astype(np.float32)
    ### END SOLUTION


# --- the offline augmented training set -----------------------------------------------------------

def _check_set_inputs(waves, labels, ids, recipe) -> tuple[list[np.ndarray], np.ndarray, list[str], dict]:
    recipe = check_recipe(recipe)
    waves = [_waveform(w, f"waves[{i}]") for i, w in enumerate(waves)]
    labels = np.asarray(labels)
    ids = [str(i) for i in ids]
    if labels.shape != (len(waves),) or len(ids) != len(waves):
        raise ValueError(f"labels, ids: expected one label and one id per waveform ({len(waves)}), got "
                         f"{labels.shape[0] if labels.ndim else labels.shape} labels and {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise ValueError("ids: clip ids must be unique")
    if recipe["copies"] and "shift" in recipe:
        for w, clip_id in zip(waves, ids):
            if round(recipe["shift"]["max_seconds"] * config.SAMPLE_RATE) >= len(w):
                raise ValueError(f"{clip_id}: too short ({len(w) / config.SAMPLE_RATE:.2f} s) for shifts up to "
                                 f"{recipe['shift']['max_seconds']:g} s")
    return waves, labels.astype(np.int64), ids, recipe


def augment_set(waves: list[np.ndarray], labels, ids: list[str], recipe: dict, seed: int) -> dict:
    """Build the offline augmented training set: the originals, then augmented copies of each clip.

    Args:
        waves: training waveforms, list of float arrays (samples_i,), at config.SAMPLE_RATE; lengths may
            differ. Not modified.
        labels: integer labels, shape (clips,) (one per waveform).
        ids: clip ids, one per waveform, unique (e.g. ``clip.id`` = "disco/disco.00012.wav").
        recipe: which effects, parameter ranges and copies per clip (format in the module docstring;
            validated by :func:`check_recipe`).
        seed: the seed of the one generator used for every random draw.

    Returns:
        a dict of four lists of equal length, items = clips * (1 + copies):
        - "waves": list of float32 arrays, values in [-1, 1]. Items 0 .. clips-1 are the originals,
          unchanged and in input order; then, clip by clip in input order, that clip's ``copies``
          augmented copies. A stretched copy keeps its stretched length (the segments of part 2 are cut
          afterwards, so lengths may differ); noise and shift keep the length.
        - "labels": int64 array (items,): each item has the label of the clip it came from.
        - "sources": list of str (items,): the id of the clip each item came from (for an original, its
          own id). Only the given ids appear, so leakage can be checked.
        - "effects": list of str (items,): "original", or the effect with its drawn parameter:
          f"noise snr={snr_db:.1f}dB", f"shift {seconds:+.2f}s" or f"stretch rate={rate:.3f}".
    Randomness (deterministic for a seed): rng = np.random.default_rng(seed), then for each clip in
    order, for each of its copies: name = enabled[rng.integers(len(enabled))] where ``enabled`` lists
    the recipe's effects in the order of EFFECTS; then the parameter, rng.uniform(low, high) (for the
    shift rng.uniform(-max_seconds, max_seconds)); then the effect itself (add_noise draws its noise
    from the same rng).
    Raises ValueError (one line) for an invalid recipe, mismatched lengths, duplicate ids, a bad
    waveform, or a clip not longer than the largest shift (naming the clip).
    """
    waves, labels, ids, recipe = _check_set_inputs(waves, labels, ids, recipe)
    ### BEGIN SOLUTION
    rng = np.random.default_rng(seed)
    enabled = [name for name in EFFECTS if name in recipe]
    out = {"waves": [w.astype(np.float32) for w in waves], "labels": list(labels), "sources": list(ids),
           "effects": ["original"] * len(waves)}
    for y, label, clip_id in zip(waves, labels, ids):
        for _ in range(recipe["copies"]):
            name = enabled[rng.integers(len(enabled))]
            if name == "noise":
                snr_db = rng.uniform(*recipe["noise"]["snr_db"])
                wave, effect = add_noise(y, snr_db, rng), f"noise snr={snr_db:.1f}dB"
            elif name == "shift":
                max_seconds = recipe["shift"]["max_seconds"]
                seconds = rng.uniform(-max_seconds, max_seconds)
                wave, effect = time_shift(y, seconds), f"shift {seconds:+.2f}s"
            else:
                rate = rng.uniform(*recipe["stretch"]["rate"])
                wave, effect = time_stretch(y, rate), f"stretch rate={rate:.3f}"
            out["waves"].append(wave)
            out["labels"].append(label)
            out["sources"].append(clip_id)
            out["effects"].append(effect)
    out["labels"] = np.asarray(out["labels"], dtype=np.int64)
    return out
    ### END SOLUTION
