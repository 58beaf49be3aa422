"""Part 3 (augmentation): the reference passes its hidden checks, each listed wrong answer fails exactly
the checks aimed at it, correct variants pass; bad input gives one-line errors; the toolkit's cache of
the augmented set is built once, validated, and reused; the leakage helper."""

import importlib.util
import json
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from autograder.checks import part3
from autograder.course import ASSIGNMENT, SOLUTIONS
from autograder.release import strip_solutions
from genrekit import augcache, cache, config, data

from conftest import tone, write_wav

sys.path.insert(0, str(SOLUTIONS / ASSIGNMENT))  # the reference package, for this test module only
from genre import augment  # noqa: E402

sys.path.pop(0)

SR = config.SAMPLE_RATE
CHECKS = {
    "add_noise": ["add_noise_contract", "add_noise_reproducible", "add_noise_level", "add_noise_db"],
    "time_shift": ["time_shift_length", "time_shift_content", "time_shift_circular"],
    "time_stretch": ["time_stretch_duration", "time_stretch_pitch"],
    "augment_set": ["augment_set_originals", "augment_set_provenance", "augment_set_deterministic"],
}


def failing(kind: str, fn) -> set[str]:
    """The checks of ``kind`` that ``fn`` fails."""
    failed = set()
    for name in CHECKS[kind]:
        try:
            getattr(part3, f"check_{name}")(fn)
        except AssertionError:
            failed.add(name)
    return failed


# --- wrong answers: one small function per plausible mistake --------------------------------------

def _rms(y):
    return np.sqrt(np.mean(np.asarray(y, dtype=np.float64) ** 2))


def noise_fixed_amplitude(y, snr_db, rng):
    """SNR against full scale: the same noise level for a quiet and a loud clip."""
    return np.clip(y + 10 ** (-snr_db / 20) * rng.standard_normal(len(y)), -1, 1).astype(np.float32)


def noise_constant(y, snr_db, rng):
    """The write-up's fixed amplitude, snr_db ignored."""
    return np.clip(y + 0.005 * rng.standard_normal(len(y)), -1, 1).astype(np.float32)


def noise_amplitude_db(y, snr_db, rng):
    """snr_db used as an amplitude ratio in 10 log10: the SNR doubles in dB."""
    return np.clip(y + _rms(y) / 10 ** (snr_db / 10) * rng.standard_normal(len(y)), -1, 1).astype(np.float32)


def noise_amplitude_db_halved(y, snr_db, rng):
    """noise power = P / 10 ** (snr_db / 20): the SNR halves in dB."""
    sigma = np.sqrt(_rms(y) ** 2 / 10 ** (snr_db / 20))
    return np.clip(y + sigma * rng.standard_normal(len(y)), -1, 1).astype(np.float32)


def noise_in_place(y, snr_db, rng):
    y += (_rms(y) / 10 ** (snr_db / 20) * rng.standard_normal(len(y))).astype(y.dtype)
    np.clip(y, -1, 1, out=y)
    return y.astype(np.float32, copy=False)


def noise_global_random(y, snr_db, rng):
    noise = _rms(y) / 10 ** (snr_db / 20) * np.random.standard_normal(len(y))
    return np.clip(y + noise, -1, 1).astype(np.float32)


def noise_not_clipped(y, snr_db, rng):
    return (y + _rms(y) / 10 ** (snr_db / 20) * rng.standard_normal(len(y))).astype(np.float32)


def shift_keeps_tail(y, seconds, sr=SR):
    """Puts the wrapped part in front but forgets to drop it from the end: the length grows."""
    s = round(seconds * sr)
    return np.concatenate([y[-s:], y]).astype(np.float32)


def shift_zero_padded(y, seconds, sr=SR):
    """Length kept, but silence instead of the wrapped samples (the contract says circular)."""
    s = round(seconds * sr)
    out = np.zeros_like(y, dtype=np.float32)
    if s > 0:
        out[s:] = y[:-s]
    else:
        out[:s] = y[-s:]
    return out


def shift_pad_no_crop(y, seconds, sr=SR):
    """Pads with zeros in front and keeps everything (or drops the start): length and wrap both wrong."""
    s = round(seconds * sr)
    return (np.concatenate([np.zeros(s), y]) if s > 0 else y[-s:]).astype(np.float32)


def shift_wrong_direction(y, seconds, sr=SR):
    return np.roll(y, -round(seconds * sr)).astype(np.float32)


def shift_truncated(y, seconds, sr=SR):
    return np.roll(y, int(seconds * sr)).astype(np.float32)


def shift_float64(y, seconds, sr=SR):
    return np.roll(y, round(seconds * sr)).astype(np.float64)


def stretch_resample(y, rate):
    """Plain resampling: the duration changes, and so does the pitch."""
    return librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=SR, target_sr=SR / rate).astype(np.float32)


def stretch_interp(y, rate):
    n = round(len(y) / rate)
    return np.interp(np.arange(n) * rate, np.arange(len(y)), y).astype(np.float32)


def stretch_cut_or_pad(y, rate):
    """Only the length changes: the music is cut or padded, not played faster or slower."""
    return librosa.util.fix_length(np.asarray(y, dtype=np.float32), size=round(len(y) / rate))


def stretch_inverse_rate(y, rate):
    return librosa.effects.time_stretch(np.asarray(y, dtype=np.float32), rate=1 / rate)


def stretch_floor_length(y, rate):
    out = librosa.effects.time_stretch(np.asarray(y, dtype=np.float32), rate=rate)
    return librosa.util.fix_length(out, size=int(len(y) / rate))


FULL = {"noise": {"snr_db": [10.0, 30.0]}, "shift": {"max_seconds": 0.5}, "stretch": {"rate": [0.9, 1.1]}}


def set_drops_originals(waves, labels, ids, recipe, seed):
    out = augment.augment_set(waves, labels, ids, recipe, seed)
    n = len(waves)
    return {"waves": out["waves"][n:], "labels": out["labels"][n:], "sources": out["sources"][n:],
            "effects": out["effects"][n:]}


def set_shuffled(waves, labels, ids, recipe, seed):
    """Originals kept but shuffled in among the copies."""
    out = augment.augment_set(waves, labels, ids, recipe, seed)
    order = np.random.default_rng(seed).permutation(len(out["waves"]))
    return {k: [list(v)[i] for i in order] for k, v in out.items()}


def set_index_sources(waves, labels, ids, recipe, seed):
    """Provenance lost: the source recorded as the clip's position, not its id."""
    out = augment.augment_set(waves, labels, ids, recipe, seed)
    return {**out, "sources": [ids.index(s) for s in out["sources"]]}


def set_no_sources(waves, labels, ids, recipe, seed):
    out = augment.augment_set(waves, labels, ids, recipe, seed)
    return {**out, "sources": [None] * len(out["waves"]), "effects": ["augmented"] * len(out["waves"])}


def set_wrong_sources(waves, labels, ids, recipe, seed):
    """Each copy credited to the next clip (an off-by-one in the bookkeeping)."""
    out = augment.augment_set(waves, labels, ids, recipe, seed)
    n = len(waves)
    sources = list(out["sources"][:n]) + [ids[(ids.index(s) + 1) % n] for s in out["sources"][n:]]
    labels_of = dict(zip(ids, labels))
    return {**out, "sources": sources, "labels": np.array([labels_of[s] for s in sources])}


def set_copy_labels_lost(waves, labels, ids, recipe, seed):
    out = augment.augment_set(waves, labels, ids, recipe, seed)
    labels_out = np.array(out["labels"])
    labels_out[len(waves):] = 0
    return {**out, "labels": labels_out}


def set_ignores_recipe(waves, labels, ids, recipe, seed):
    return augment.augment_set(waves, labels, ids, {**FULL, **recipe}, seed)


def set_unseeded(waves, labels, ids, recipe, seed):
    return augment.augment_set(waves, labels, ids, recipe, int(np.random.default_rng().integers(2**31)))


WRONG = {  # variant -> (kind, the checks it must fail, exactly)
    noise_fixed_amplitude: ("add_noise", {"add_noise_level"}),
    noise_constant: ("add_noise", {"add_noise_level", "add_noise_db"}),  # two mistakes: fixed, and snr_db ignored
    noise_amplitude_db: ("add_noise", {"add_noise_db"}),
    noise_amplitude_db_halved: ("add_noise", {"add_noise_db"}),
    noise_in_place: ("add_noise", {"add_noise_contract"}),
    noise_global_random: ("add_noise", {"add_noise_reproducible"}),
    noise_not_clipped: ("add_noise", {"add_noise_contract"}),
    shift_keeps_tail: ("time_shift", {"time_shift_length"}),
    shift_zero_padded: ("time_shift", {"time_shift_circular"}),
    shift_pad_no_crop: ("time_shift", {"time_shift_length", "time_shift_circular"}),
    shift_wrong_direction: ("time_shift", {"time_shift_content"}),
    shift_truncated: ("time_shift", {"time_shift_content"}),
    shift_float64: ("time_shift", {"time_shift_length"}),
    stretch_resample: ("time_stretch", {"time_stretch_pitch"}),
    stretch_interp: ("time_stretch", {"time_stretch_pitch"}),
    stretch_cut_or_pad: ("time_stretch", {"time_stretch_duration"}),
    stretch_inverse_rate: ("time_stretch", {"time_stretch_duration"}),
    stretch_floor_length: ("time_stretch", {"time_stretch_duration"}),
    set_drops_originals: ("augment_set", {"augment_set_originals"}),
    set_shuffled: ("augment_set", {"augment_set_originals"}),
    set_index_sources: ("augment_set", {"augment_set_provenance"}),
    set_no_sources: ("augment_set", {"augment_set_provenance"}),
    set_wrong_sources: ("augment_set", {"augment_set_provenance"}),
    set_copy_labels_lost: ("augment_set", {"augment_set_provenance"}),
    set_ignores_recipe: ("augment_set", {"augment_set_provenance"}),
    set_unseeded: ("augment_set", {"augment_set_deterministic"}),
}


def test_reference_passes_every_check():
    for kind, names in CHECKS.items():
        for name in names:
            getattr(part3, f"check_{name}")(getattr(augment, kind))


def test_each_wrong_answer_fails_exactly_its_checks():
    table = {fn.__name__: failing(kind, fn) for fn, (kind, _) in WRONG.items()}
    assert table == {fn.__name__: expected for fn, (_, expected) in WRONG.items()}


def test_failure_messages_name_the_mistake():
    cases = [("add_noise_level", noise_fixed_amplitude, "own power"),
             ("add_noise_db", noise_amplitude_db, "10 ** (snr_db / 10)"),
             ("add_noise_contract", noise_in_place, "in place"),
             ("time_shift_length", shift_keeps_tail, "length must be kept"),
             ("time_shift_content", shift_wrong_direction, "should move it later"),
             ("time_shift_content", shift_truncated, "round(seconds * sr)"),
             ("time_shift_circular", shift_zero_padded, "circular"),
             ("time_stretch_pitch", stretch_resample, "resampling"),
             ("time_stretch_duration", stretch_cut_or_pad, "cut or padded"),
             ("augment_set_originals", set_drops_originals, "originals are kept"),
             ("augment_set_provenance", set_index_sources, "not one of the given clip ids"),
             ("augment_set_provenance", set_wrong_sources, "comes from another clip"),
             ("augment_set_deterministic", set_unseeded, "same seed")]
    for name, fn, words in cases:
        with pytest.raises(AssertionError) as err:
            getattr(part3, f"check_{name}")(fn)
        assert words in str(err.value) and "\n" not in str(err.value), (name, str(err.value))


# --- records judged in the grader's process -------------------------------------------------------

ONLY_FACTS = {"add_noise_contract", "time_shift_length", "augment_set_deterministic"}  # digests, shapes, dtypes


def test_each_check_is_judged_from_its_record_alone():
    """As the grader runs them: each probe on the reference function (found by the import path it
    declares), its encoded record judged by the verdict alone, passes. A forged record (every array
    replaced by zeros of the same shape) fails every check whose record holds outputs, not only facts
    (shapes, dtypes, digests); noise that is the clip rescaled, and copies whose excerpts are silence,
    fail too."""
    from autograder.checks import common
    names = sorted(n for n in common.CHECKS if n.startswith("part3."))
    assert names == sorted(f"part3.check_{n}" for ns in CHECKS.values() for n in ns)
    records, fooled = {}, set()
    for name in names:
        check = common.CHECKS[name]
        assert len(check.student) == 1 and check.student[0].rsplit(".", 1)[0] == "genre.augment", name
        raw = check.record(getattr(augment, check.student[0].rsplit(".", 1)[1]))
        assert len(raw) < common.RECORD_LIMIT // 2 and common.judge(name, raw) is None, name
        records[name] = common.decode(raw)
        forged = {k: np.zeros_like(v) if isinstance(v, np.ndarray) else v for k, v in records[name].items()}
        if common.judge(name, common.encode(forged)) is None:
            fooled.add(name.split(".check_")[1])
    assert fooled <= ONLY_FACTS, fooled
    level = dict(records["part3.check_add_noise_level"])
    for i, (_, y) in enumerate(part3._level_clips()):  # the clip rescaled: the right power, but not noise
        for snr in (0.0, 20.0):
            level[f"out_{i}_{snr:g}"] = (y * (1 + 10 ** (-snr / 20))).astype(np.float32)
    assert "independent" in common.judge("part3.check_add_noise_level", common.encode(level))
    provenance = {k: np.zeros_like(v) if "_excerpt_" in k else v
                  for k, v in records["part3.check_augment_set_provenance"].items()}
    assert "comes from another clip" in common.judge("part3.check_augment_set_provenance", common.encode(provenance))


# --- correct answers written differently ----------------------------------------------------------

def noise_normal(y, snr_db, rng):
    """rng.normal with the amplitude ratio 10 ** (snr_db / 20) on the RMS: the same SNR."""
    y = np.asarray(y, dtype=np.float32)
    return np.clip(y + rng.normal(0.0, _rms(y) * 10 ** (-snr_db / 20), size=y.shape), -1, 1).astype(np.float32)


def noise_exact_power(y, snr_db, rng):
    """Noise rescaled to exactly the target power."""
    noise = rng.standard_normal(len(y))
    noise *= np.sqrt(np.mean(np.asarray(y, np.float64) ** 2) / 10 ** (snr_db / 10) / np.mean(noise ** 2))
    return np.minimum(np.maximum(y + noise, -1.0), 1.0).astype(np.float32)


def shift_concatenate(y, seconds, sr=SR):
    s = round(seconds * sr) % len(y)
    return np.concatenate([y[len(y) - s:], y[:len(y) - s]]).astype(np.float32)


def shift_take(y, seconds, sr=SR):
    return np.take(y, (np.arange(len(y)) - round(seconds * sr)) % len(y)).astype(np.float32)


def stretch_librosa_plain(y, rate):
    """librosa alone already returns round(len / rate) samples."""
    return np.clip(librosa.effects.time_stretch(np.asarray(y, dtype=np.float32), rate=rate), -1, 1)


def stretch_small_fft(y, rate):
    return librosa.effects.time_stretch(np.asarray(y, dtype=np.float32), rate=rate, n_fft=1024, hop_length=256)


def stretch_large_fft(y, rate):
    return np.clip(librosa.effects.time_stretch(np.asarray(y, dtype=np.float32), rate=rate, n_fft=4096,
                                                hop_length=1024), -1, 1)


def set_copy_major(waves, labels, ids, recipe, seed):
    """Copies in rounds (first copy of every clip, then the second...), other draws, other effect texts."""
    rng = np.random.default_rng(seed)
    out = {"waves": [np.array(w, dtype=np.float32) for w in waves], "labels": list(labels), "sources": list(ids),
           "effects": ["original"] * len(waves)}
    names = [n for n in augment.EFFECTS if n in recipe]
    for _ in range(recipe["copies"]):
        for y, label, clip_id in zip(waves, labels, ids):
            name = str(rng.choice(names))
            if name == "noise":
                snr = rng.uniform(*recipe["noise"]["snr_db"])
                wave = augment.add_noise(y, snr, rng)
            elif name == "shift":
                wave = augment.time_shift(y, rng.uniform(-1, 1) * recipe["shift"]["max_seconds"])
            else:
                wave = augment.time_stretch(y, rng.uniform(*recipe["stretch"]["rate"]))
            out["waves"].append(wave)
            out["labels"].append(int(label))
            out["sources"].append(clip_id)
            out["effects"].append(f"{name} (copy)")
    return out


def test_correct_variants_pass():
    for kind, fn in [("add_noise", noise_normal), ("add_noise", noise_exact_power), ("time_shift", shift_concatenate),
                     ("time_shift", shift_take), ("time_stretch", stretch_librosa_plain),
                     ("time_stretch", stretch_small_fft), ("time_stretch", stretch_large_fft),
                     ("augment_set", set_copy_major)]:
        assert failing(kind, fn) == set(), fn.__name__


@pytest.mark.parametrize("name, wrong", [("add_noise", noise_fixed_amplitude), ("add_noise", noise_constant),
                                         ("time_shift", shift_keeps_tail), ("time_shift", shift_zero_padded),
                                         ("time_stretch", stretch_resample), ("time_stretch", stretch_cut_or_pad)])
def test_a_wrong_effect_is_not_charged_again_in_augment_set(monkeypatch, name, wrong):
    monkeypatch.setattr(augment, name, wrong)
    assert failing("augment_set", augment.augment_set) == set()


def test_the_released_stubs_fail_every_check(tmp_path):
    source = (SOLUTIONS / ASSIGNMENT / "genre" / "augment.py").read_text()
    path = tmp_path / "augment_stub.py"
    path.write_text(strip_solutions(source))
    spec = importlib.util.spec_from_file_location("augment_stub", path)
    stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stub)
    assert stub.DEFAULT_RECIPE == augment.DEFAULT_RECIPE and stub.check_recipe(stub.DEFAULT_RECIPE)
    for kind, names in CHECKS.items():
        assert failing(kind, getattr(stub, kind)) == set(names), kind
    with pytest.raises(AssertionError, match="your code raised NotImplementedError"):
        part3.check_time_shift_length(stub.time_shift)


# --- bad input: one-line ValueErrors naming the argument ------------------------------------------

def test_bad_input_raises_one_line_errors():
    y = tone(1.0, SR)
    rng = np.random.default_rng(0)
    cases = [
        (lambda: augment.add_noise(y, float("inf"), rng), "snr_db"),
        (lambda: augment.add_noise(y, float("nan"), rng), "snr_db"),
        (lambda: augment.add_noise(np.zeros(100, np.float32), 10.0, rng), "y: silent"),
        (lambda: augment.add_noise(np.ones((2, 100), np.float32) * 0.1, 10.0, rng), "y:"),
        (lambda: augment.add_noise(np.array([0.1, np.nan], np.float32), 10.0, rng), "y:"),
        (lambda: augment.add_noise(y, 10.0, 0), "rng"),
        (lambda: augment.time_shift(y, 1.0), "seconds"),
        (lambda: augment.time_shift(y, -1.2), "seconds"),
        (lambda: augment.time_shift(y, float("nan")), "seconds"),
        (lambda: augment.time_stretch(y, 0.0), "rate"),
        (lambda: augment.time_stretch(y, -1.0), "rate"),
        (lambda: augment.time_stretch(y, float("inf")), "rate"),
        (lambda: augment.augment_set([y, y[:8000]], [0, 1], ["a", "b"], {"copies": 1, "shift": {"max_seconds": 0.5}}, 0),
         "b: too short"),
        (lambda: augment.augment_set([y], [0, 1], ["a"], augment.DEFAULT_RECIPE, 0), "labels, ids"),
        (lambda: augment.augment_set([y, y], [0, 1], ["a", "a"], augment.DEFAULT_RECIPE, 0), "ids"),
        (lambda: augment.check_recipe({"copies": 1, "pitch": {}}), "recipe: unknown"),
        (lambda: augment.check_recipe({"copies": -1}), "recipe['copies']"),
        (lambda: augment.check_recipe({"copies": 2}), "no effect enabled"),
        (lambda: augment.check_recipe({"copies": 1, "noise": {"snr_db": [30, 10]}}), "recipe['noise']['snr_db']"),
        (lambda: augment.check_recipe({"copies": 1, "stretch": {"rate": [0.0, 1.2]}}), "recipe['stretch']['rate']"),
        (lambda: augment.check_recipe({"copies": 1, "shift": {"max_seconds": float("nan")}}), "max_seconds"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value).startswith(words) or words in str(err.value), (words, str(err.value))
        assert "\n" not in str(err.value)


def test_augment_set_format_and_lengths():
    waves = [tone(2.0, SR, 330.0), tone(2.5, SR, 880.0, 0.5)]
    recipe = {"copies": 4, "stretch": {"rate": [0.8, 0.8]}}
    out = augment.augment_set(waves, np.array([2, 6]), ["x/a.wav", "y/b.wav"], recipe, 3)
    assert [len(w) for w in out["waves"]] == [32000, 40000] + [40000] * 4 + [50000] * 4  # stretched length kept
    assert out["labels"].dtype == np.int64 and out["labels"].tolist() == [2, 6] + [2] * 4 + [6] * 4
    assert out["effects"][2] == "stretch rate=0.800" and out["sources"][-1] == "y/b.wav"
    assert all(w.dtype == np.float32 and np.abs(w).max() <= 1 for w in out["waves"])
    only = augment.augment_set(waves, [2, 6], ["a", "b"], {"copies": 0}, 0)
    assert only["effects"] == ["original", "original"] and len(only["waves"]) == 2


def test_time_stretch_length_is_round_of_n_over_rate():
    y = np.random.default_rng(0).standard_normal(7777).astype(np.float32) * 0.1
    for rate in (0.85, 1.2, 2.0, 0.5, 1.37):
        assert len(augment.time_stretch(y, rate)) == round(7777 / rate)


# --- the toolkit's cache of the augmented set -------------------------------------------------------

CALLS = []
RECIPE = {"copies": 1, "noise": {"snr_db": [10.0, 30.0]}, "shift": {"max_seconds": 1.0}, "stretch": {"rate": [0.9, 1.1]}}


def counting_build(waves, labels, ids, recipe, seed):
    CALLS.append(seed)
    return augment.augment_set(waves, labels, ids, recipe, seed)


@pytest.fixture
def train(tiny_synth):
    return data.Dataset(tiny_synth).clips("train")[:6]


def test_built_once_then_read_from_disk(tmp_path, train):
    CALLS.clear()
    clips, prov = augcache.augmented(counting_build, train, RECIPE, 0, cache_dir=tmp_path, progress=False)
    assert CALLS == [0] and len(clips) == len(prov["items"]) == 2 * len(train)
    again, prov2 = augcache.augmented(counting_build, train, RECIPE, 0, cache_dir=tmp_path, progress=False)
    assert CALLS == [0], "the augmented set was rebuilt"
    assert again == clips and prov2["items"] == prov["items"]
    # originals are the source files themselves; copies are 16-bit wav files at the toolkit's rate
    assert [c.path for c in clips[:len(train)]] == [c.path for c in train]
    assert [c.effect for c in clips[:len(train)]] == ["original"] * len(train)
    info = sf.info(str(clips[-1].path))
    assert info.samplerate == SR and info.subtype == "PCM_16" and clips[-1].path.is_relative_to(tmp_path)
    assert [c.source for c in clips] == [c.id for c in train] * 2
    assert [c.label for c in clips] == [c.label for c in train] * 2
    saved = json.loads((Path(prov2["folder"]) / augcache.MANIFEST).read_text())
    assert saved["recipe"] == RECIPE and saved["seed"] == 0 and "test_augment.counting_build" in saved["function"]
    assert {"file", "label", "source", "effect"} <= set(saved["items"][-1])
    # the written copy holds what the build function returned (to 16-bit precision)
    rebuilt = augment.augment_set([data.load_audio(c.path) for c in train], [c.label for c in train],
                                  [c.id for c in train], RECIPE, 0)
    assert np.abs(data.load_audio(clips[-1].path) - rebuilt["waves"][-1]).max() < 1e-4
    # features of augmented audio go through the feature cache like any clip
    feats, labels, kept = cache.features(lambda y: y[:100], clips, cache_dir=tmp_path / "f", progress=False)
    assert len(feats) == len(clips) and labels.tolist() == [c.label for c in clips]


def test_changed_recipe_or_seed_builds_a_new_set(tmp_path, train):
    CALLS.clear()
    a, pa = augcache.augmented(counting_build, train, RECIPE, 0, cache_dir=tmp_path, progress=False)
    b, pb = augcache.augmented(counting_build, train, RECIPE, 1, cache_dir=tmp_path, progress=False)
    c, pc = augcache.augmented(counting_build, train, {**RECIPE, "copies": 2}, 0, cache_dir=tmp_path, progress=False)
    assert CALLS == [0, 1, 0] and len({pa["folder"], pb["folder"], pc["folder"]}) == 3
    assert len(c) == 3 * len(train) and [x.effect for x in a] != [x.effect for x in b]
    a[-1].path.unlink()
    augcache.augmented(counting_build, train, RECIPE, 0, cache_dir=tmp_path, progress=False)
    assert CALLS == [0, 1, 0, 0], "a set with a missing file should be rebuilt"
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_source_clips_raise_one_line_errors_naming_the_clip(tmp_path, train):
    root = tmp_path / "ds"
    silent = write_wav(root / "pop" / "pop.00001.wav", np.zeros(SR, np.float32), SR)
    nan = write_wav(root / "jazz" / "jazz.00002.wav", np.array([0.1, np.nan] * SR, np.float32), SR, subtype="FLOAT")
    short = write_wav(root / "disco" / "disco.00003.wav", tone(0.5, SR), SR)
    for path, words in [(silent, "silent"), (nan, "NaN"), (short, "too short")]:
        bad = data.Clip(path, path.parent.name, config.GENRE_TO_LABEL[path.parent.name], f"{path.parent.name}/{path.name}")
        with pytest.raises(data.AudioError) as err:
            augcache.augmented(counting_build, [*train[:2], bad], RECIPE, 0, cache_dir=tmp_path / "c", progress=False)
        assert str(path) in str(err.value) and words in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.glob("c/augmented-*"))


def _bad_output(change):
    def build(waves, labels, ids, recipe, seed):
        return change(augment.augment_set(waves, labels, ids, recipe, seed), ids)
    return build


@pytest.mark.parametrize("change, words", [
    (lambda out, ids: (out["waves"], out["labels"]), "must return a dict"),
    (lambda out, ids: {**out, "effects": out["effects"][:-1]}, "same, non-zero length"),
    (lambda out, ids: {**out, "sources": ["rock/rock.00001.wav"] * len(out["waves"])}, "is not the id"),
    (lambda out, ids: {**out, "labels": (np.asarray(out["labels"]) + 1) % config.NUM_CLASSES}, "but its source has label"),
    (lambda out, ids: {**out, "waves": [w * np.nan for w in out["waves"]]}, "NaN"),
    (lambda out, ids: {**out, "waves": [w * 3 for w in out["waves"]]}, "outside [-1, 1]"),
    (lambda out, ids: {**out, "waves": [w[None] for w in out["waves"]]}, "1-D float"),
])
def test_bad_build_output_raises_one_line_errors(tmp_path, train, change, words):
    with pytest.raises(augcache.AugmentError) as err:
        augcache.augmented(_bad_output(change), train[:3], RECIPE, 0, cache_dir=tmp_path, progress=False)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.glob("augmented-*"))


def test_leaks():
    sources = ["disco/disco.00001.wav", "disco/disco.00001.wav", "jazz/jazz.00007.wav", "pop/pop.00003.wav"]
    assert augcache.leaks(sources, ["rock.1", "x"], ["y"]) == []
    assert augcache.leaks(sources, ["pop/pop.00003.wav"], ["disco/disco.00001.wav", "z"]) == \
        ["disco/disco.00001.wav", "pop/pop.00003.wav"]
    clip = data.Clip(Path("/nowhere/jazz.00007.wav"), "jazz", 4, "jazz/jazz.00007.wav")
    assert augcache.leaks(sources, [], [clip]) == ["jazz/jazz.00007.wav"]
