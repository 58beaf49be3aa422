"""The TensorFlow implementation of genrekit.musicnn (issue 5), kept as the reference for the PyTorch port.

Used only by ``data_scripts/musicnn_golden.py`` (which records the golden outputs in
``tests/fixtures/musicnn_golden.npz`` and compares the port with live TensorFlow: ``make musicnn-check``)
and by ``bench/bench_pretrained.py`` (speed ratio) when TensorFlow is installed. TensorFlow is not in the
default environment: ``pip install -r requirements-tf.txt`` (``make musicnn-check`` builds ``.venv-tf``).

This is genrekit/musicnn.py as it was before the port (same API), plus the ``taggram`` layer (the 50 tag
probabilities, ``sigmoid`` of the logits, as ``musicnn.extractor``); a clip shorter than one patch is
refused here, as it was then.

How it differs from ``musicnn.extractor.extractor`` (same network and checkpoint; on musicnn's own
input patches the outputs are identical, while end to end they differ by up to about 0.5 % of the
largest value, because musicnn rounds its spectrogram to float16 and this module does not):
- the log-mel spectrogram is computed in float32 (musicnn casts it to float16, which overflows to
  ``inf`` on loud audio and poisons the features);
- the checkpoint restore is verified (every variable compared with the file): a missing or damaged
  checkpoint raises :class:`MusicnnError` instead of silently running random weights;
- the graph is built once per model in a private ``tf.Graph`` (TensorFlow's eager mode stays on for
  the rest of the process) and patches are run in fixed-size chunks, so a clip's features never depend
  on what else is in its batch (musicnn's own batching returns wrong ``cnn1..3``/``penultimate``
  values for every batch after the first);
- nothing is written to stderr: TensorFlow is imported lazily, with its log variables set first and
  file descriptor 2 silenced while its C++ side starts (it prints there before reading them).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np

from genrekit import config

# --- musicnn's signal constants (musicnn/configuration.py; the models were trained with these) ------
SR: int = 16_000        # Hz: audio is resampled to this before the spectrogram
FFT_SIZE: int = 512     # STFT window, samples (32 ms)
FFT_HOP: int = 256      # STFT hop, samples (16 ms): 62.5 frames per second
N_MELS: int = 96        # mel bands of the network input

MODELS: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn")  # trained on the Million Song Dataset / MagnaTagATune
NUM_TAGS: int = 50                                        # output tags of both models (not exposed)
LAYERS: dict[str, int] = {  # layer name -> embedding size
    "max_pool": 753,     # temporal max of the front-end + mid-end feature map
    "mean_pool": 753,    # temporal mean of the same map
    "penultimate": 200,  # the dense layer before the tag outputs (after its batch norm)
    "taggram": 50,       # the tag probabilities (sigmoid of the logits)
}
CHUNK: int = 1  # patches per network run (the last chunk zero-padded): 1 gives the numbers of musicnn.extractor bit for bit


class MusicnnError(Exception):
    """An unusable input, model name, layer or checkpoint; ``str(err)`` is one line."""


class BadAudioError(MusicnnError):
    """A clip that cannot be embedded (too short, not mono, NaN samples); other clips still can."""


# --- front end: log-mel patches (numpy / librosa) ------------------------------------------------

def frames_per_segment(segment_seconds: float) -> int:
    """Spectrogram frames in one patch of ``segment_seconds`` (as musicnn: 3.0 s -> 187 frames)."""
    if not segment_seconds > 0:
        raise MusicnnError(f"segment_seconds must be > 0, got {segment_seconds}")
    # librosa.time_to_frames(t, sr=SR, n_fft=FFT_SIZE, hop_length=FFT_HOP) + 1, written out
    return int(np.floor((segment_seconds * SR - FFT_SIZE // 2) / FFT_HOP)) + 1


def log_mel(audio: np.ndarray) -> np.ndarray:
    """musicnn's input representation of 16 kHz audio, computed in float32.

    audio: (samples,) float at 16 kHz. Returns (frames, 96) float32, ``log10(10000 * mel + 1)`` of the
    power mel spectrogram (n_fft 512, hop 256, centred frames: frames = 1 + samples // 256).
    """
    import librosa
    mel = librosa.feature.melspectrogram(y=np.asarray(audio, dtype=np.float32), sr=SR,
                                         hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS)
    return np.log10(np.float32(10000) * mel.T.astype(np.float32) + np.float32(1)).astype(np.float32)


def patches(spec: np.ndarray, n_frames: int, hop_frames: int | None = None) -> np.ndarray:
    """Cut a (frames, mels) spectrogram into patches of ``n_frames`` starting every ``hop_frames``.

    Returns (segments, n_frames, mels), same dtype; a tail shorter than a patch is dropped (as musicnn).
    segments = 1 + (frames - n_frames) // hop_frames. Raises MusicnnError if frames < n_frames.
    """
    hop_frames = hop_frames or n_frames
    if spec.shape[0] < n_frames:
        raise BadAudioError(f"audio too short: {spec.shape[0]} spectrogram frames "
                           f"({spec.shape[0] * FFT_HOP / SR:.2f} s), one segment needs {n_frames} "
                           f"({(n_frames - 1) * FFT_HOP / SR:.2f} s)")
    starts = range(0, spec.shape[0] - n_frames + 1, hop_frames)
    return np.stack([spec[s:s + n_frames] for s in starts])


def _prepare(audio, sr: int) -> np.ndarray:
    """Validate one clip and resample it to 16 kHz: returns (samples,) float32."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise BadAudioError(f"expected mono audio of shape (samples,), got shape {audio.shape}")
    if audio.size == 0:
        raise BadAudioError("audio too short: no samples")
    audio = audio.astype(np.float32, copy=False)
    if not np.all(np.isfinite(audio)):
        raise BadAudioError("audio contains NaN or infinite samples")
    if sr != SR:
        import librosa
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SR, res_type="soxr_hq").astype(np.float32)
    return audio


def _check_choice(model: str, layer: str) -> None:
    if model not in MODELS:
        raise MusicnnError(f"unknown musicnn model '{model}' (expected one of {', '.join(MODELS)})")
    if layer not in LAYERS:
        raise MusicnnError(f"unknown musicnn layer '{layer}' (expected one of {', '.join(LAYERS)})")


# --- TensorFlow, quietly ---------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """Silence file descriptor 2 and Python warnings for the duration (TensorFlow's C++ start-up
    messages bypass ``TF_CPP_MIN_LOG_LEVEL``). Process-wide while it lasts."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _tensorflow():
    """Import TensorFlow (legacy Keras, no logging) and musicnn's model definitions, lazily."""
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"          # musicnn's tf.compat.v1.layers need tf_keras
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet():
        import tensorflow as tf
        from musicnn import models
    return tf, models


def package_dir() -> Path:
    """Folder of the installed ``musicnn`` package (its model folders live inside)."""
    import importlib.util
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise MusicnnError("the musicnn package is not installed (pip install --no-deps musicnn==0.1.0)")
    return Path(list(spec.submodule_search_locations)[0])


def _reason(err: Exception) -> str:
    """The informative line of a TensorFlow error (its message opens with generic lines)."""
    generic = ("graph execution error", "detected at node", "node:", "file ", "[[", "original stack")
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.lower().startswith(generic)]
    return (useful or lines or [""])[0][:200]


class _Network:
    """One musicnn graph and session with its verified weights; ``run`` maps patches to a layer."""

    def __init__(self, model: str, model_dir: Path):
        tf, models = _tensorflow()
        self.model_dir = model_dir
        prefix = str(model_dir) + os.sep  # the shipped checkpoints are named ".index", ".data-..."
        if not Path(prefix + ".index").is_file():
            raise MusicnnError(f"{model_dir}: no musicnn checkpoint here (expected '.index' and '.data-*' files)")
        self.graph = tf.Graph()
        with _quiet(), self.graph.as_default():
            self.x = tf.compat.v1.placeholder(tf.float32, [None, None, N_MELS])
            try:
                out = models.define_model(self.x, False, model, NUM_TAGS)
            except AttributeError as err:  # Keras 3: TensorFlow was imported before us without the variable
                raise MusicnnError(f"cannot build musicnn ({str(err).splitlines()[0]}); set "
                                   f"TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported") from None
            self.outputs = {"mean_pool": out[6], "max_pool": out[7], "penultimate": out[8],
                            "taggram": tf.nn.sigmoid(out[0])}
            variables = tf.compat.v1.global_variables()
            self.session = tf.compat.v1.Session(graph=self.graph)
            try:
                self.session.run(tf.compat.v1.variables_initializer(variables))  # so a skipped restore shows
                tf.compat.v1.train.Saver(var_list=variables).restore(self.session, prefix)
                reader = tf.compat.v1.train.NewCheckpointReader(prefix)
                restored = self.session.run(variables)
            except Exception as err:  # TensorFlow raises many types; all mean "unusable checkpoint"
                self.session.close()
                raise MusicnnError(f"{model_dir}: cannot restore the musicnn checkpoint "
                                   f"({type(err).__name__}: {_reason(err)})") from None
        for var, value in zip(variables, restored):  # musicnn swallows restore errors: we check
            name = var.op.name
            if not reader.has_tensor(name) or not np.array_equal(reader.get_tensor(name), value):
                self.session.close()
                raise MusicnnError(f"{model_dir}: checkpoint restore failed: variable '{name}' differs from the file")
        self.graph.finalize()  # read-only from now on: runs never add ops

    def run(self, batch: np.ndarray, layer: str) -> np.ndarray:
        """batch: (segments, frames, 96) float32 -> (segments, LAYERS[layer]) float32.

        Runs in chunks of exactly CHUNK patches (zero-padded), so results never depend on the batch.
        """
        out = []
        for start in range(0, len(batch), CHUNK):
            chunk = batch[start:start + CHUNK]
            n = len(chunk)
            if n < CHUNK:
                chunk = np.concatenate([chunk, np.zeros((CHUNK - n,) + chunk.shape[1:], np.float32)])
            with _quiet():
                out.append(self.session.run(self.outputs[layer], feed_dict={self.x: chunk})[:n])
        return np.concatenate(out).astype(np.float32, copy=False)


_NETWORKS: dict[tuple[str, str], _Network] = {}
_LOCK = threading.Lock()


def network(model: str = "MSD_musicnn", model_dir=None) -> _Network:
    """The built, restored network for ``model`` (cached per model and weights folder)."""
    _check_choice(model, "max_pool")
    folder = Path(model_dir) if model_dir is not None else package_dir() / model
    key = (model, str(folder.resolve()))
    with _LOCK:
        if key not in _NETWORKS:
            _NETWORKS[key] = _Network(model, folder)
        return _NETWORKS[key]


def clear() -> None:
    """Close every cached session (frees the memory; the next call rebuilds)."""
    with _LOCK:
        for net in _NETWORKS.values():
            net.session.close()
        _NETWORKS.clear()


# --- public API ------------------------------------------------------------------------------------

def embed_batch(clips, sr: int = config.SAMPLE_RATE, model: str = "MSD_musicnn", layer: str = "max_pool",
                segment_seconds: float = 3.0, hop_seconds: float | None = None,
                model_dir=None) -> list[np.ndarray]:
    """musicnn embeddings of several clips: list of (segments_i, LAYERS[layer]) float32, in clip order.

    clips: list of mono waveforms, each (samples,) float, at ``sr`` Hz (resampled to 16 kHz if needed).
    Each clip is cut into patches of ``segment_seconds`` (3.0 s -> 187 frames, what the models were
    trained on) starting every ``hop_seconds`` (default: ``segment_seconds``, no overlap); a tail shorter
    than a patch is dropped, so a 30 s clip gives 10 segments. ``model`` is one of MODELS, ``layer`` one
    of LAYERS; ``model_dir`` replaces the packaged weights folder of ``model``.
    A clip's result is the same whether it is embedded alone or with others.
    Raises MusicnnError (one line) for an unknown model or layer, a clip shorter than one segment, or a
    checkpoint that cannot be restored.
    """
    _check_choice(model, layer)
    n_frames = frames_per_segment(segment_seconds)
    hop_frames = n_frames if hop_seconds is None else max(1, int(round(hop_seconds * SR / FFT_HOP)))
    cut = []
    for i, clip in enumerate(clips):
        try:
            cut.append(patches(log_mel(_prepare(clip, sr)), n_frames, hop_frames))
        except BadAudioError as err:
            raise BadAudioError(f"clip {i}: {err}" if len(clips) > 1 else str(err)) from None
    if not cut:
        return []
    net = network(model, model_dir)
    flat = net.run(np.concatenate(cut), layer)
    bounds = np.cumsum([len(c) for c in cut])[:-1]
    return list(np.split(flat, bounds))


def embed(audio, sr: int = config.SAMPLE_RATE, model: str = "MSD_musicnn", layer: str = "max_pool",
          segment_seconds: float = 3.0, hop_seconds: float | None = None, model_dir=None) -> np.ndarray:
    """musicnn embedding of one clip, one row per segment: (segments, LAYERS[layer]) float32.

    audio: (samples,) float mono at ``sr`` Hz. Segments as in :func:`embed_batch` (a 30 s clip with
    3 s segments -> (10, 753) for ``max_pool``/``mean_pool``, (10, 200) for ``penultimate``).
    Average the rows for one vector per clip.
    """
    return embed_batch([audio], sr=sr, model=model, layer=layer, segment_seconds=segment_seconds,
                       hop_seconds=hop_seconds, model_dir=model_dir)[0]


def embed_patches(batch: np.ndarray, model: str = "MSD_musicnn", layer: str = "max_pool",
                  model_dir=None) -> np.ndarray:
    """Network outputs for precomputed log-mel patches (see :func:`log_mel` and :func:`patches`).

    batch: (segments, frames, 96) float32 -> (segments, LAYERS[layer]) float32.
    """
    _check_choice(model, layer)
    batch = np.asarray(batch, dtype=np.float32)
    if batch.ndim != 3 or batch.shape[2] != N_MELS:
        raise MusicnnError(f"expected patches of shape (segments, frames, {N_MELS}), got {batch.shape}")
    return network(model, model_dir).run(batch, layer)
