"""Synthetic GTZAN: a small GTZAN-shaped dataset rendered from style-conditioned generated MIDI.

Each clip is a few bars of generated music in the style of its genre, rendered through the General
MIDI soundfont that ships with pretty_midi (``TimGM6mb.sf2``) by tinysoundfont. A genre is a
:class:`Style`: a tempo range, swing, drum pattern, bass line, accompaniment figure, harmony and the
instruments that may play each part. Per clip everything is drawn at random within the style (tempo,
key, mode, instruments, density, mix levels, start offset, added noise), and with a small probability
one part is borrowed from another genre, so that clips of a genre differ and genres overlap a little.

Command line (also ``make data``)::

    genrekit synth --out DIR --clips-per-genre 26 --seconds 15 --seed 0

writes ``DIR/<genre>/<genre>.NNNNN.wav`` (22050 Hz mono 16-bit, like GTZAN), split lists in
``DIR/splits/default/`` and ``DIR/dataset.json``. Same arguments, same bytes.
It is far easier than real music: numbers on it prove the pipeline, not the model.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genrekit import config
from genrekit.data import MANIFEST, write_split_lists
from genrekit.progress import bar

SYNTH_VERSION = 2            # bump when the generator changes what it writes
RENDER_RATE = 22_050         # Hz, GTZAN's rate (clips are resampled on load like real GTZAN)
DEFAULT_CLIPS_PER_GENRE = 26
DEFAULT_SECONDS = 15.0
DEFAULT_SEED = 0
SPLIT_FRACTIONS = {"train": 0.35, "valid": 0.15, "test": 0.5}  # a small training set and >= 100 test clips
BORROW_PROB = 0.3            # chance that one part of a clip is played in another genre's manner
# Named builds, opened by name like any dataset (``open_dataset("synthetic-small")``): the course's
# dataset, and a shorter-clip one for quick runs (the project's tests, smoke runs of a new machine),
# with thresholds of its own. A build with other arguments is named by them (see :func:`name_of`).
PRESETS = {
    "synthetic": {"clips_per_genre": DEFAULT_CLIPS_PER_GENRE, "seconds": DEFAULT_SECONDS, "seed": DEFAULT_SEED},
    "synthetic-small": {"clips_per_genre": DEFAULT_CLIPS_PER_GENRE, "seconds": 8.0, "seed": DEFAULT_SEED},
}

DRUMS, BASS, COMP, LEAD, PAD = 9, 0, 1, 2, 3     # MIDI channels of the parts
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
# GM percussion keys
KICK, RIM, SNARE, CLAP, CHH, PHH, OHH, CRASH, RIDE, TAMB, SHAKER = 36, 37, 38, 39, 42, 44, 46, 49, 51, 54, 70


@dataclass(frozen=True)
class Style:
    """How a genre sounds: ranges and choices from which each clip is drawn."""
    tempo: tuple[float, float]            # BPM range
    swing: tuple[float, float]            # 0 = straight 16ths/8ths, 0.33 = triplet swing
    minor_prob: float                     # chance of a minor key
    progressions: tuple[tuple[int, ...], ...]  # chord roots as scale degrees (0 = tonic), one per bar
    chord: str                            # "triad", "seventh" or "power"
    drums: str | None                     # drum pattern name (None: no drums)
    kits: tuple[int, ...]                 # GM drum kit presets (bank 128)
    bass: str                             # bass pattern name
    bass_programs: tuple[int, ...]
    comp: str                             # accompaniment pattern name
    comp_programs: tuple[int, ...]
    lead_programs: tuple[int, ...]
    lead_density: tuple[float, float]     # notes per beat range of the melody
    pad_programs: tuple[int, ...] = ()    # optional sustained layer
    octave: int = 0                       # register shift of the chords/lead, in octaves
    extra: dict = field(default_factory=dict)


STYLES: dict[str, Style] = {
    "classical": Style(
        tempo=(60, 110), swing=(0, 0), minor_prob=0.45,
        progressions=((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 1, 4, 0)), chord="triad",
        drums=None, kits=(48,), bass="sustained", bass_programs=(42, 43, 32),
        comp="arpeggio", comp_programs=(0, 46, 48, 49, 45),
        lead_programs=(40, 73, 68, 71, 41, 60), lead_density=(0.5, 2.0), pad_programs=(48, 49, 52)),
    "country": Style(
        tempo=(90, 140), swing=(0, 0.12), minor_prob=0.1,
        progressions=((0, 3, 4, 0), (0, 0, 3, 4), (0, 4, 3, 0), (0, 3, 0, 4)), chord="triad",
        drums="train", kits=(0, 8, 40), bass="root_fifth", bass_programs=(32, 33, 34),
        comp="strum", comp_programs=(25, 24, 25, 105),
        lead_programs=(110, 22, 105, 27, 40), lead_density=(1.0, 2.5)),
    "disco": Style(
        tempo=(110, 130), swing=(0, 0.05), minor_prob=0.5,
        progressions=((0, 3), (0, 5, 1, 4), (1, 4, 0, 5), (0, 6, 5, 6)), chord="seventh",
        drums="four_floor", kits=(0, 24, 8), bass="octaves", bass_programs=(33, 36, 38, 34),
        comp="stabs", comp_programs=(48, 49, 61, 28, 4),
        lead_programs=(48, 56, 61, 81, 65), lead_density=(0.5, 2.0), pad_programs=(50, 48)),
    "hiphop": Style(
        tempo=(75, 98), swing=(0.05, 0.2), minor_prob=0.75,
        progressions=((0, 5, 2, 6), (0, 3), (0, 0, 5, 5), (0, 6, 5, 4)), chord="seventh",
        drums="boom_bap", kits=(25, 24, 0), bass="sub", bass_programs=(38, 39, 33, 87),
        comp="keys", comp_programs=(4, 5, 0, 11, 88),
        lead_programs=(4, 80, 11, 73, 89), lead_density=(0.25, 1.0)),
    "jazz": Style(
        tempo=(100, 200), swing=(0.2, 0.33), minor_prob=0.35,
        progressions=((1, 4, 0, 5), (0, 5, 1, 4), (1, 4, 0, 0), (2, 5, 1, 4)), chord="seventh",
        drums="swing", kits=(32, 40), bass="walking", bass_programs=(32, 32, 33),
        comp="comping", comp_programs=(0, 26, 4, 1),
        lead_programs=(65, 66, 56, 64, 26, 0, 71), lead_density=(1.0, 3.0)),
    "metal": Style(
        tempo=(100, 190), swing=(0, 0), minor_prob=0.95,
        progressions=((0, 5, 6, 0), (0, 0, 1, 0), (0, 6, 5, 4), (0, 3, 5, 6)), chord="power",
        drums="double_kick", kits=(16, 0, 8), bass="driving", bass_programs=(34, 33, 29),
        comp="chug", comp_programs=(30, 29, 30),
        lead_programs=(30, 29, 81), lead_density=(1.0, 4.0), octave=-1),
    "pop": Style(
        tempo=(95, 128), swing=(0, 0.05), minor_prob=0.25,
        progressions=((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (0, 5, 3, 4)), chord="triad",
        drums="backbeat", kits=(0, 24, 8), bass="eighths", bass_programs=(33, 38, 34, 35),
        comp="pulse", comp_programs=(90, 81, 4, 0, 27, 89),
        lead_programs=(80, 81, 54, 4, 73, 52), lead_density=(0.75, 2.0), pad_programs=(89, 88, 90)),
    "reggae": Style(
        tempo=(66, 95), swing=(0.08, 0.2), minor_prob=0.45,
        progressions=((0, 3), (0, 4), (1, 4), (0, 3, 4, 3)), chord="triad",
        drums="one_drop", kits=(0, 8, 32), bass="dub", bass_programs=(33, 34, 32, 38),
        comp="skank", comp_programs=(27, 28, 16, 17, 26),
        lead_programs=(22, 16, 56, 57, 17), lead_density=(0.25, 1.5)),
}
assert tuple(STYLES) == config.GENRES, "STYLES must cover the genres in label order"


# --- harmony ----------------------------------------------------------------------------------------

def chord_pitches(key: int, scale, degree: int, kind: str, base: int = 48) -> list[int]:
    """MIDI pitches of the chord on ``degree`` of the scale; ``kind`` is triad, seventh or power."""
    def note(d):
        return base + key + scale[d % 7] + 12 * (d // 7)
    if kind == "power":
        return [note(degree), note(degree) + 7, note(degree) + 12]
    steps = (0, 2, 4, 6) if kind == "seventh" else (0, 2, 4)
    return [note(degree + s) for s in steps]


# --- patterns: each returns a list of (start_beat, length_beats, channel, pitch, velocity) ------------

def _drum_hits(rng, name, bars):
    """Drum hits on a 16-step bar grid for pattern ``name``."""
    hits = []  # (step, key, velocity)
    for b in range(bars):
        o = 16 * b
        if name == "four_floor":
            hits += [(o + s, KICK, 115) for s in (0, 4, 8, 12)]
            hits += [(o + s, rng.choice([SNARE, CLAP]), 100) for s in (4, 12)]
            hits += [(o + s, OHH, 80) for s in (2, 6, 10, 14)]
            hits += [(o + s, CHH, 55) for s in range(0, 16, 2) if s % 4 == 0]
        elif name == "backbeat":
            hits += [(o + s, KICK, 110) for s in (0, 8)] + ([(o + 10, KICK, 95)] if rng.random() < 0.5 else [])
            hits += [(o + s, SNARE, 105) for s in (4, 12)]
            hits += [(o + s, CHH, 70) for s in range(0, 16, 2)]
        elif name == "train":
            hits += [(o + s, KICK, 100) for s in (0, 8)]
            hits += [(o + s, SNARE, 95 if s in (4, 12) else 45) for s in range(0, 16, 2)]
            hits += [(o + s, RIM, 60) for s in (2, 10)] if rng.random() < 0.5 else []
        elif name == "swing":
            hits += [(o + s, RIDE, 85 if s in (0, 8) else 70) for s in (0, 4, 6, 8, 12, 14)]
            hits += [(o + s, PHH, 60) for s in (4, 12)]
            hits += [(o + s, KICK, 40) for s in (0, 4, 8, 12) if rng.random() < 0.5]
            hits += [(o + int(rng.integers(0, 16)), SNARE, int(rng.integers(35, 70))) for _ in range(2)]
        elif name == "one_drop":
            hits += [(o + 8, KICK, 110), (o + 8, RIM, 100)]
            hits += [(o + s, CHH, 65) for s in range(2, 16, 4)] + [(o + s, CHH, 45) for s in range(0, 16, 4)]
            hits += [(o + 14, OHH, 60)] if rng.random() < 0.4 else []
        elif name == "boom_bap":
            hits += [(o + s, KICK, 120) for s in (0, 7, 10)] + ([(o + 3, KICK, 90)] if rng.random() < 0.3 else [])
            hits += [(o + s, rng.choice([SNARE, CLAP]), 120) for s in (4, 12)]
            hits += [(o + s, CHH, 60 + 20 * (s % 4 == 0)) for s in range(0, 16, 2)]
        elif name == "double_kick":
            hits += [(o + s, KICK, 105) for s in range(16)]
            hits += [(o + s, SNARE, 120) for s in (4, 12)]
            hits += [(o + s, rng.choice([CRASH, RIDE]), 90) for s in (0, 8)]
        else:
            raise ValueError(f"unknown drum pattern '{name}'")
    return [(s / 4, 0.25, DRUMS, int(k), int(v)) for s, k, v in hits]


def _bass(rng, name, roots, scale, key):
    """Bass line: ``roots`` are MIDI root pitches per bar (around E1-E2)."""
    notes = []
    for b, r in enumerate(roots):
        o = 4.0 * b
        if name == "sustained":
            notes += [(o, 2.0, r, 80), (o + 2, 2.0, r + (7 if rng.random() < 0.5 else 0), 75)]
        elif name == "root_fifth":
            notes += [(o + i, 0.9, r + (0, 7, 12, 7)[i] - (12 if i == 2 else 0), 95) for i in range(4)]
        elif name == "octaves":
            notes += [(o + i / 2, 0.4, r + 12 * (i % 2), 105) for i in range(8)]
        elif name == "sub":
            notes += [(o, 1.5, r, 115), (o + 1.75, 1.0, r, 105)] + ([(o + 2.75, 0.75, r + 7, 95)] if rng.random() < 0.5 else [])
        elif name == "walking":
            step = key + scale[int(rng.integers(0, 7))]
            nxt = roots[(b + 1) % len(roots)]
            line = [r, r + rng.choice([3, 4, 7]), 36 + step % 12, nxt + rng.choice([-1, 1])]
            notes += [(o + i, 0.95, int(p), 90) for i, p in enumerate(line)]
        elif name == "driving":
            notes += [(o + i / 4, 0.22, r, 110) for i in range(16)]
        elif name == "eighths":
            notes += [(o + i / 2, 0.45, r + (12 if i == 7 and rng.random() < 0.5 else 0), 95) for i in range(8)]
        elif name == "dub":
            notes += [(o + 0.5, 0.9, r, 115), (o + 1.5, 0.5, r + 7, 105), (o + 2.0, 1.0, r + 12, 100),
                      (o + 3.25, 0.6, r + rng.choice([3, 4, 5]), 100)]
        else:
            raise ValueError(f"unknown bass pattern '{name}'")
    return [(s, d, BASS, int(p), v) for s, d, p, v in notes]


def _comp(rng, name, chords):
    """Accompaniment: ``chords`` are the chord pitch lists per bar."""
    notes = []
    for b, ch in enumerate(chords):
        o = 4.0 * b
        if name == "arpeggio":
            seq = ch + [ch[0] + 12] + ch[::-1][1:]
            rate = rng.choice([2, 4])
            notes += [(o + i / rate, 1.0 / rate, seq[i % len(seq)], 70) for i in range(4 * rate)]
        elif name == "strum":
            for i in range(8):
                vel = 90 if i % 2 == 0 else 60
                notes += [(o + i / 2 + 0.01 * k, 0.45, p, vel) for k, p in enumerate(ch)]
        elif name == "stabs":
            notes += [(o + t, 0.3, p, 85) for t in (0.5, 1.5, 2.5, 3.5) for p in ch + [ch[0] + 12]]
        elif name == "keys":
            notes += [(o, 3.5, p, 65) for p in ch] + ([(o + 2.5, 1.0, p + 12, 55) for p in ch[:2]] if rng.random() < 0.4 else [])
        elif name == "comping":
            for _ in range(int(rng.integers(2, 4))):
                t = float(rng.choice([0.0, 0.67, 1.33, 1.67, 2.33, 2.67, 3.33]))
                notes += [(o + t, 0.6, p, int(rng.integers(55, 85))) for p in ch]
        elif name == "chug":
            notes += [(o + i / 4, 0.2, p, 100 if i % 4 == 0 else 80) for i in range(16) for p in ch[:2]]
        elif name == "pulse":
            notes += [(o + i / 2, 0.45, p, 75 if i % 2 == 0 else 60) for i in range(8) for p in ch]
        elif name == "skank":
            notes += [(o + t, 0.2, p + 12, 95) for t in (1.0, 3.0) for p in ch]
            notes += [(o + t, 0.15, p + 12, 70) for t in (1.5, 3.5) for p in ch] if rng.random() < 0.5 else []
        else:
            raise ValueError(f"unknown accompaniment pattern '{name}'")
    return [(s, d, COMP, int(p), v) for s, d, p, v in notes]


def _lead(rng, beats, density, key, scale, octave):
    """A random-walk melody over the scale, ``density`` notes per beat on average."""
    notes, t, deg = [], 0.0, int(rng.integers(0, 7))
    base = 72 + key + 12 * octave
    while t < beats:
        dur = float(rng.choice([0.25, 0.5, 1.0, 1.5, 2.0], p=_dur_probs(density)))
        if rng.random() < 0.85:
            deg = int(np.clip(deg + rng.choice([-2, -1, -1, 1, 1, 2, 3]), -3, 10))
            notes.append((t, dur * 0.95, LEAD, base + scale[deg % 7] + 12 * (deg // 7), int(rng.integers(70, 105))))
        t += dur
    return notes


def _dur_probs(density):
    w = np.array([density ** 2, density, 1.0, 0.6 / density, 0.4 / density])
    return w / w.sum()


# --- one clip -------------------------------------------------------------------------------------

def _borrowed(rng, genre):
    """The style of each part of a clip: its genre's, or (rarely) another genre's for one part."""
    parts = {p: genre for p in ("drums", "bass", "comp", "lead")}
    if rng.random() < BORROW_PROB:
        other = str(rng.choice([g for g in config.GENRES if g != genre]))
        parts[str(rng.choice(list(parts)))] = other
    return parts


def compose(genre: str, seconds: float, rng: np.random.Generator) -> dict:
    """Draw one clip of ``genre``: returns {"tempo", "programs", "volumes", "notes", "offset", "snr_db"}.

    ``notes`` is a list of (start_s, duration_s, channel, pitch, velocity); the clip is ``seconds``
    long starting at ``offset`` seconds into the rendered bars.
    """
    style = STYLES[genre]
    parts = _borrowed(rng, genre)
    tempo = float(rng.uniform(*style.tempo))
    beat = 60.0 / tempo
    swing = float(rng.uniform(*style.swing))
    key = int(rng.integers(0, 12))
    scale = MINOR if rng.random() < style.minor_prob else MAJOR
    prog = style.progressions[int(rng.integers(len(style.progressions)))]
    bars = int(np.ceil((seconds + 2 * 4 * beat) / (4 * beat)))
    degrees = [prog[b % len(prog)] for b in range(bars)]
    chord_base = 48 + 12 * style.octave
    chords = [chord_pitches(key, scale, d, style.chord, chord_base) for d in degrees]
    roots = [28 + (key + scale[d % 7]) % 12 for d in degrees]

    notes = []
    drum_style = STYLES[parts["drums"]]
    if drum_style.drums and rng.random() > 0.05:
        notes += _drum_hits(rng, drum_style.drums, bars)
    notes += _bass(rng, STYLES[parts["bass"]].bass, roots, scale, key)
    comp_style = STYLES[parts["comp"]]
    notes += _comp(rng, comp_style.comp, [chord_pitches(key, scale, d, comp_style.chord, chord_base) for d in degrees])
    lead_style = STYLES[parts["lead"]]
    if rng.random() < 0.8:
        notes += _lead(rng, 4 * bars, float(rng.uniform(*lead_style.lead_density)), key, scale, style.octave)
    if style.pad_programs and rng.random() < 0.5:
        notes += [(4.0 * b, 4.0, PAD, p, 50) for b, ch in enumerate(chords) for p in ch]

    def to_seconds(start_beat):  # swing delays each off-beat 8th note by ``swing`` of a beat
        whole, frac = divmod(start_beat, 1.0)
        if abs(frac - 0.5) < 1e-6:
            frac += swing * 0.5  # 0.33 -> the off-beat lands on the last triplet
        return (whole + frac) * beat

    timed = [(to_seconds(s) + float(rng.normal(0, 0.004)) * (c != DRUMS), d * beat, c, p,
              int(np.clip(v + rng.integers(-8, 9), 1, 127))) for s, d, c, p, v in notes]
    programs = {
        DRUMS: int(rng.choice(drum_style.kits)),
        BASS: int(rng.choice(STYLES[parts["bass"]].bass_programs)),
        COMP: int(rng.choice(comp_style.comp_programs)),
        LEAD: int(rng.choice(lead_style.lead_programs)),
        PAD: int(rng.choice(style.pad_programs)) if style.pad_programs else 48,
    }
    volumes = {c: int(rng.integers(70, 120)) for c in programs}
    return {"genre": genre, "parts": parts, "tempo": tempo, "programs": programs, "volumes": volumes,
            "notes": timed, "offset": float(rng.uniform(0, 4 * beat)), "snr_db": float(rng.uniform(20, 45)),
            "gain_db": float(rng.uniform(-12, -3))}


_SOUNDFONT = None


def _soundfont_bytes() -> bytes:
    global _SOUNDFONT
    if _SOUNDFONT is None:
        import pretty_midi
        _SOUNDFONT = (Path(pretty_midi.__file__).parent / "TimGM6mb.sf2").read_bytes()
    return _SOUNDFONT


def render(clip: dict, seconds: float, sr: int = RENDER_RATE, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render a composed clip to float32 mono, shape (round(seconds * sr),), peak below 1."""
    import tinysoundfont
    synth = tinysoundfont.Synth(samplerate=sr)
    sfid = synth.sfload(_soundfont_bytes())
    for chan, prog in clip["programs"].items():
        if chan == DRUMS:
            synth.program_select(chan, sfid, 128, prog, True)
        else:
            synth.program_select(chan, sfid, 0, prog)
        synth.control_change(chan, 7, clip["volumes"][chan])
    events = []
    for start, dur, chan, pitch, vel in clip["notes"]:
        start = max(start, 0.0)
        events.append((start, 1, chan, pitch, vel))
        events.append((start + max(dur, 0.02), 0, chan, pitch, 0))
    events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same instant
    total = int(round((clip["offset"] + seconds) * sr))
    out = np.zeros((total, 2), dtype=np.float32)
    pos = 0
    for t, is_on, chan, pitch, vel in events:
        at = min(int(round(t * sr)), total)
        if at > pos:
            out[pos:at] = np.frombuffer(synth.generate(at - pos), dtype=np.float32).reshape(-1, 2)
            pos = at
        if pos >= total:
            break
        if is_on:
            synth.noteon(chan, pitch, vel)
        else:
            synth.noteoff(chan, pitch)
    if pos < total:
        out[pos:] = np.frombuffer(synth.generate(total - pos), dtype=np.float32).reshape(-1, 2)
    y = out.mean(axis=1)[int(round(clip["offset"] * sr)):][: int(round(seconds * sr))]
    rng = rng or np.random.default_rng(0)
    y = y / (np.sqrt(np.mean(y ** 2)) + 1e-9) * 10 ** (clip["gain_db"] / 20) * 0.25
    noise = rng.standard_normal(len(y)).astype(np.float32)
    y = y + noise * np.sqrt(np.mean(y ** 2)) * 10 ** (-clip["snr_db"] / 20)
    peak = np.max(np.abs(y))
    if peak > 0.99:
        y = y * (0.99 / peak)
    return y.astype(np.float32)


def clip_rng(seed: int, genre: str, index: int) -> np.random.Generator:
    """The random generator of one clip: independent of every other clip, fixed by (seed, genre, index)."""
    return np.random.default_rng([seed, config.GENRE_TO_LABEL[genre], index])


def split_of(clips_per_genre: int, seed: int, genre: str) -> dict[str, list[int]]:
    """Clip indices of one genre per subset (train/valid/test), a seeded shuffle cut by SPLIT_FRACTIONS."""
    order = np.random.default_rng([seed, 999, config.GENRE_TO_LABEL[genre]]).permutation(clips_per_genre)
    n_valid = max(1, int(round(clips_per_genre * SPLIT_FRACTIONS["valid"])))
    n_test = max(1, int(round(clips_per_genre * SPLIT_FRACTIONS["test"])))
    n_train = clips_per_genre - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"--clips-per-genre {clips_per_genre} is too small: need at least one clip each for train, valid and test")
    return {"train": sorted(order[:n_train].tolist()), "valid": sorted(order[n_train:n_train + n_valid].tolist()),
            "test": sorted(order[n_train + n_valid:].tolist())}


def name_of(clips_per_genre: int, seconds: float, seed: int) -> str:
    """The dataset name a build records: its preset's name, or one made of its arguments
    (``synthetic-12x5s-seed3``), so thresholds and outputs of different builds never mix."""
    args = {"clips_per_genre": clips_per_genre, "seconds": float(seconds), "seed": seed}
    for name, preset in PRESETS.items():
        if args == {**preset, "seconds": float(preset["seconds"])}:
            return name
    return f"synthetic-{clips_per_genre}x{float(seconds):g}s-seed{seed}"


def build(out, clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE, seconds: float = DEFAULT_SECONDS,
          seed: int = DEFAULT_SEED, progress: bool = True) -> Path:
    """Write the synthetic dataset to ``out`` (see the module docstring); returns the folder.

    Re-running with the same arguments over an existing folder rewrites identical files.
    """
    import soundfile as sf
    if seconds <= 0 or seconds > 120:
        raise ValueError(f"--seconds {seconds}: expected a length in (0, 120]")
    out = Path(out)
    lists = {s: [] for s in SPLIT_FRACTIONS}
    jobs = [(g, i) for g in config.GENRES for i in range(clips_per_genre)]
    for g in config.GENRES:
        for subset, idx in split_of(clips_per_genre, seed, g).items():
            lists[subset] += [f"{g}/{g}.{i:05d}.wav" for i in idx]
    for genre, i in bar(jobs, desc="synth", disable=not progress):
        rng = clip_rng(seed, genre, i)
        y = render(compose(genre, seconds, rng), seconds, rng=rng)
        path = out / genre / f"{genre}.{i:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        sf.write(str(tmp), y, RENDER_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    write_split_lists(out, "default", lists)
    manifest = {"name": name_of(clips_per_genre, seconds, seed), "default_split": "default", "generator": "genrekit.synth",
                "version": SYNTH_VERSION, "seed": seed, "clips_per_genre": clips_per_genre,
                "seconds": seconds, "sample_rate": RENDER_RATE, "genres": list(config.GENRES),
                "styles": {g: asdict(s) for g, s in STYLES.items()}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=list))
    return out
