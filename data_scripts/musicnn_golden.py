"""Golden outputs of musicnn: recorded from the TensorFlow implementation, compared with the PyTorch port.

    python -m data_scripts.musicnn_golden            # compare genrekit.musicnn with the committed fixture
    python -m data_scripts.musicnn_golden --live     # compare it with TensorFlow run now (make musicnn-check)
    python -m data_scripts.musicnn_golden --write    # re-record tests/fixtures/musicnn_golden.npz with TensorFlow

``--live`` and ``--write`` need TensorFlow (``pip install -r requirements-tf.txt``; ``make musicnn-check``
builds a separate ``.venv-tf`` for it) and run ``data_scripts/musicnn_tf.py``, the TensorFlow
implementation genrekit.musicnn had before the port (float32 front end, one patch per run).

The inputs are deterministic: tones, noise, a loud square wave (musicnn's own float16 front end
overflows on it), two clips of ``genrekit.synth`` (stored in the fixture as 16-bit samples, so later
changes to the synthesiser do not change the test), lengths that are not a whole number of patches,
a resampled clip, a non-default segment length and hop, and two clips shorter than one patch. Those
are embedded the way genrekit.musicnn documents: the log-mel frames repeated until they fill a patch
(musicnn-training's ``repeat-pad``, the setting the shipped models were trained with); TensorFlow
then runs that padded patch. Every layer (LAYERS) of both models is recorded.

Tolerance: |port - TensorFlow| <= TOLERANCE * max(1, max|TensorFlow|) per output (2e-5). Reached on
the project's machine (2 cores, oneDNN in both): at most 6.1e-6 (MTT_musicnn max_pool), 4e-6 for
mean_pool and penultimate, 1.8e-6 for taggram. Both compute the same float32 log-mel spectrogram (the
same code), so what remains is float32 rounding inside the network: the convolutions sum their
products in another order (TensorFlow's oneDNN kernels, torch's own choice of kernels, the temporal
filters as 1-D convolutions), about 1e-7 relative per layer, grown through eight convolution and
batch-norm layers. The margin above 6.1e-6 allows other CPUs and kernels. Against musicnn's own
extractor the difference is far larger (up to about 0.5 % of the largest value) because musicnn
rounds its spectrogram to float16 before the logarithm (and overflows on loud audio): intended.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "musicnn_golden.npz"
TOLERANCE = 2e-5  # relative to max(1, largest |value| of the output); the port reached 6.1e-6 (docstring)
SR = 16_000

# (case, signal, segment_seconds, hop_seconds): every case is embedded with every model and layer
CASES: tuple[tuple[str, str, float, float | None], ...] = (
    ("tone", "tone", 3.0, None),                 # 9.5 s: 3 patches, 0.5 s tail dropped
    ("tone_seg4_hop1p5", "tone", 4.0, 1.5),      # 250-frame patches every 94 frames: 4 rows
    ("chord_22k", "chord_22k", 3.0, None),       # 22050 Hz input, resampled to 16 kHz
    ("noise", "noise", 3.0, None),
    ("loud_square", "loud_square", 3.0, None),   # full scale: musicnn's float16 spectrogram overflows
    ("synth_disco", "synth_disco", 3.0, None),
    ("synth_metal_22k", "synth_metal_22k", 3.0, None),
    ("short", "short", 3.0, None),               # 1.3 s: one patch, repeat-padded
    ("blip", "blip", 3.0, None),                 # 0.25 s: 16 frames repeated 12 times
)
SYNTH = {"synth_disco": ("disco", 6.5, SR, 1), "synth_metal_22k": ("metal", 6.5, 22_050, 2)}  # genre, s, Hz, index


def _tone(seconds, sr, freqs, amp, noise, seed):
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    y = sum(amp * np.sin(2 * np.pi * f * t) for f in freqs) * (0.6 + 0.4 * np.cos(2 * np.pi * 0.5 * t))
    return (y + noise * rng.standard_normal(t.size)).astype(np.float32)


def _loud_square(seconds, sr=SR, seed=1):
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    y = 0.99 * np.sign(np.sin(2 * np.pi * 110 * t)) + 0.3 * rng.standard_normal(t.size)
    return np.clip(y, -1, 1).astype(np.float32)


def render_synth(name: str) -> np.ndarray:
    """A genrekit.synth clip, seed 0, as int16 samples (the form stored in the fixture)."""
    from genrekit import synth
    genre, seconds, sr, index = SYNTH[name]
    rng = synth.clip_rng(0, genre, index)
    y = synth.render(synth.compose(genre, seconds, rng), seconds, sr=sr, rng=rng)
    return np.round(np.clip(y, -1, 1) * 32767).astype(np.int16)


def signals(fixture=None) -> dict[str, tuple[np.ndarray, int]]:
    """Every input signal: name -> ((samples,) float32, sample rate). Synth clips come from ``fixture``
    (an opened npz) when given, else they are rendered now."""
    out = {
        "tone": (_tone(9.5, SR, [220.0], 0.3, 0.01, 0), SR),
        "chord_22k": (_tone(6.7, 22_050, [261.6, 329.6, 392.0], 0.15, 0.005, 1), 22_050),
        "noise": ((0.1 * np.random.default_rng(2).standard_normal(int(7.3 * SR))).astype(np.float32), SR),
        "loud_square": (_loud_square(6.5), SR),
        "short": (_tone(1.3, SR, [440.0, 660.0], 0.2, 0.02, 3), SR),
        "blip": ((0.3 * np.random.default_rng(4).standard_normal(int(0.25 * SR))).astype(np.float32), SR),
    }
    for name, (_, _, sr, _) in SYNTH.items():
        pcm = fixture[f"audio.{name}"] if fixture is not None else render_synth(name)
        out[name] = (pcm.astype(np.float32) / 32767, sr)
    return out


def key(model: str, case: str, layer: str) -> str:
    """The fixture's name of one output (case names hold no dots)."""
    return f"{model}.{case}.{layer}"


def tensorflow_outputs(sigs) -> dict[str, np.ndarray]:
    """Every case, model and layer through data_scripts/musicnn_tf.py (TensorFlow); short clips are
    repeat-padded to one patch here, independently of genrekit.musicnn."""
    from data_scripts import musicnn_tf as tfm
    out = {}
    for case, signal, seg, hop in CASES:
        y, sr = sigs[signal]
        n_frames = tfm.frames_per_segment(seg)
        spec = tfm.log_mel(tfm._prepare(y, sr))
        short = spec.shape[0] < n_frames
        for model in tfm.MODELS:
            for layer in tfm.LAYERS:
                if short:  # repeat the frames until they fill one patch
                    padded = spec[np.arange(n_frames) % spec.shape[0]][None]
                    out[key(model, case, layer)] = tfm.embed_patches(padded, model=model, layer=layer)
                else:
                    out[key(model, case, layer)] = tfm.embed(y, sr=sr, model=model, layer=layer,
                                                             segment_seconds=seg, hop_seconds=hop)
    return out


def port_outputs(sigs, models=None) -> dict[str, np.ndarray]:
    """The same through genrekit.musicnn's public API (one call per case, model and layer)."""
    from genrekit import musicnn
    out = {}
    for case, signal, seg, hop in CASES:
        y, sr = sigs[signal]
        for model in models or musicnn.MODELS:
            for layer in musicnn.LAYERS:
                out[key(model, case, layer)] = musicnn.embed(y, sr=sr, model=model, layer=layer,
                                                             segment_seconds=seg, hop_seconds=hop)
    return out


def differences(reference: dict, ours: dict) -> dict[str, float]:
    """key -> max |ours - reference| / max(1, max |reference|) for every key of ``ours``;
    inf when shapes differ or a value is not finite."""
    out = {}
    for k, mine in ours.items():
        ref = np.asarray(reference[k])
        if mine.shape != ref.shape or not (np.all(np.isfinite(mine)) and np.all(np.isfinite(ref))):
            out[k] = float("inf")
        else:
            out[k] = float(np.abs(mine - ref).max() / max(1.0, float(np.abs(ref).max())))
    return out


def report(diffs: dict[str, float], what: str, against: str) -> int:
    """Print the worst difference of ``what`` from ``against`` per model and layer; returns 0 when all
    are within TOLERANCE, else 1 (with a one-line error on stderr)."""
    print(f"{what} vs {against} (max |difference| / max(1, max |reference|), worst case):")
    worst: dict[str, tuple[float, str]] = {}
    for k, d in diffs.items():
        model, case, layer = k.split(".")
        if d >= worst.get(f"{model}/{layer}", (-1.0, ""))[0]:
            worst[f"{model}/{layer}"] = (d, case)
    for name, (d, case) in sorted(worst.items()):
        print(f"  {name:<26} worst {d:.2e} ({case})")
    bad = [k for k, d in diffs.items() if not d <= TOLERANCE]
    if bad:
        print(f"error: {len(bad)} outputs of {what} differ from {against} by more than {TOLERANCE:g} "
              f"(first: {bad[0]})", file=sys.stderr)
        return 1
    print(f"{what} equals {against} within {TOLERANCE:g} ({len(diffs)} outputs)")
    return 0


def write(path: Path = FIXTURE) -> None:
    """Record the fixture: TensorFlow outputs for every case plus the synth clips' samples."""
    from data_scripts import musicnn_tf
    tf, _ = musicnn_tf._tensorflow()  # imports TensorFlow quietly, legacy Keras first
    arrays = {f"audio.{name}": render_synth(name) for name in SYNTH}
    outputs = tensorflow_outputs(signals(arrays))
    meta = {"made_by": "python -m data_scripts.musicnn_golden --write",
            "implementation": "data_scripts/musicnn_tf.py (TensorFlow, float32 front end, one patch per run)",
            "tensorflow": tf.__version__, "musicnn": "0.1.0", "cases": [list(c) for c in CASES]}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays,
                        **{k: v.astype(np.float32) for k, v in outputs.items()})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(outputs)} outputs)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="compare with TensorFlow run now (needs TensorFlow)")
    mode.add_argument("--write", action="store_true", help="re-record the fixture (needs TensorFlow)")
    args = parser.parse_args(argv)
    from data_scripts import musicnn_tf
    from genrekit import musicnn
    try:
        if args.write:
            write()
            return 0
        with np.load(FIXTURE) as fixture:
            golden = dict(fixture)
        sigs = signals(golden)
        ours = port_outputs(sigs)
        if args.live:
            live = tensorflow_outputs(sigs)
            drift = report(differences(golden, live), "TensorFlow now", "the committed fixture")
            return report(differences(live, ours), "genrekit.musicnn", "TensorFlow now") or drift
        return report(differences(golden, ours), "genrekit.musicnn", "the committed fixture")
    except ImportError as err:
        print(f"error: {err.name or err} is not installed (pip install -r requirements-tf.txt; or make musicnn-check)",
              file=sys.stderr)
        return 1
    except (musicnn.MusicnnError, musicnn_tf.MusicnnError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (OSError, KeyError) as err:
        print(f"error: {FIXTURE}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
