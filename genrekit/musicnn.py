"""musicnn embeddings (Pons & Serra, "musicnn: pre-trained convolutional neural networks for music
audio tagging", ISMIR-LBD 2019) in PyTorch, with the weights that ship inside the ``musicnn`` package.

Example::

    from genrekit import musicnn, data
    y = data.load_audio(path)                                  # float32, 16 kHz, (samples,)
    emb = musicnn.embed(y)                                     # (segments, 753) float32, 3 s segments
    emb = musicnn.embed(y, layer="penultimate", segment_seconds=4.0)   # (segments, 200)
    tags = musicnn.embed(y, layer="taggram")                   # (segments, 50) tag probabilities
    embs = musicnn.embed_batch([y1, y2])                       # [(segments_1, 753), (segments_2, 753)]

    # through the feature cache (computed once per clip, then read from disk):
    feats, labels, clips = cache.features(functools.partial(musicnn.embed, layer="max_pool"), clips)

The network (:class:`Musicnn`) is the paper's figure: a front end of musically motivated filters
(timbral: 7 frames x 40 % / 70 % of the mel axis; temporal: 128 / 64 / 32 frames x 1 mel band), a
mid-end of three dense 1-D convolutions with residual connections, and a back end of temporal max and
mean pooling, a dense layer (``penultimate``) and the 50 tag outputs (``taggram``).

Weights: the TensorFlow checkpoints in the installed ``musicnn`` package (``musicnn/MSD_musicnn/``,
``musicnn/MTT_musicnn/``) are read without TensorFlow (:mod:`genrekit.tfcheckpoint`, every tensor's
checksum verified), converted once into ``config.cache_dir()/musicnn/<model>-<key>.pt`` (a torch
state_dict with the sha256 of the checkpoint files it came from) and loaded from there afterwards; a
changed checkpoint is converted again. A missing, truncated or altered checkpoint raises
:class:`MusicnnError` naming the file: never random weights.

How the numbers relate to other implementations:
- the TensorFlow implementation this module replaced (``data_scripts/musicnn_tf.py``): equal within
  ``data_scripts.musicnn_golden.TOLERANCE`` (float32 rounding in the network; the same float32 front
  end), checked by tests/test_musicnn.py against ``tests/fixtures/musicnn_golden.npz``. Against live
  TensorFlow: ``make musicnn-check`` (installs TensorFlow into a separate ``.venv-tf``);
- ``musicnn.extractor.extractor``: identical network on the same patches, but musicnn casts its
  spectrogram to float16 before the logarithm (it overflows to ``inf`` on loud audio); here the
  log-mel spectrogram is float32, so end to end the two differ by up to about 0.5 % of the largest value.
- musicnn's own batching returns wrong ``cnn1..3``/``penultimate`` values after the first batch; here
  a clip's result does not depend on what else is in its batch (equal within float32 rounding).

Segments: each clip is cut into patches of ``segment_seconds`` (3 s = 187 frames, what the models were
trained on); a tail shorter than a patch is dropped (as musicnn). A clip shorter than one patch is
padded, not refused: its log-mel frames are repeated until they fill one patch (musicnn-training's
``repeat-pad``, the setting the shipped models were trained with) and it gives one row. Empty, NaN or
silent (all-zero) audio raises :class:`BadAudioError`.

Speed: the patches of all clips of an ``embed_batch`` call are cut first and then go through the
network in passes of ``BATCH[device]`` patches, under ``torch.inference_mode`` in float32, on
``genrekit.train.default_device()`` (GPU when present): 64 patches per pass on a GPU, one on a CPU,
where larger passes were measured slower (the front end's feature maps then leave the cache). A
clip's numbers are the same whatever else is in the call: bit for bit on CPU, within float32 rounding
(about 1e-6) on a GPU. TensorFlow is never imported.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrekit import config

IMPLEMENTATION = "torch-1"  # which code made the embeddings (the feature cache key hashes this module's source)

# --- musicnn's signal constants (musicnn/configuration.py; the models were trained with these) ------
SR: int = 16_000        # Hz: audio is resampled to this before the spectrogram
FFT_SIZE: int = 512     # STFT window, samples (32 ms)
FFT_HOP: int = 256      # STFT hop, samples (16 ms): 62.5 frames per second
N_MELS: int = 96        # mel bands of the network input

MODELS: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn")  # trained on the Million Song Dataset / MagnaTagATune
NUM_TAGS: int = 50                                        # tag outputs of both models
LAYERS: dict[str, int] = {  # layer name -> embedding size
    "max_pool": 753,     # temporal max of the front-end + mid-end feature map
    "mean_pool": 753,    # temporal mean of the same map
    "penultimate": 200,  # the dense layer before the tag outputs (after its batch norm)
    "taggram": 50,       # the tag probabilities (sigmoid of the logits)
}
BATCH: dict[str, int] = {  # patches per forward pass, by torch device type
    "cpu": 1,    # one patch per worker thread (see _Network.run): its front-end maps stay in the core's cache
    "cuda": 64,  # GPUs want large batches; results equal the CPU's within float32 rounding
    "mps": 64,
}
BAND_CHUNK: dict[str, int] = {  # timbral filter positions along the mel axis per convolution, by device type
    "cpu": 16,   # the maps of all 59 positions (9 MB per patch) leave the cache: up to 2x slower in one piece
}
BN_EPS: float = 1e-3     # TensorFlow's batch-normalisation epsilon (torch's default is 1e-5)


class MusicnnError(Exception):
    """An unusable input, model name, layer or checkpoint; ``str(err)`` is one line."""


class BadAudioError(MusicnnError):
    """A clip that cannot be embedded (empty, silent, not mono, NaN samples); other clips still can."""


# --- front end: log-mel patches (numpy / librosa) ------------------------------------------------


def frames_per_segment(segment_seconds: float) -> int:
    """Spectrogram frames in one patch of ``segment_seconds`` (as musicnn: 3.0 s -> 187 frames)."""
    if not segment_seconds > 0:
        raise MusicnnError(f"segment_seconds must be > 0, got {segment_seconds}")
    # librosa.time_to_frames(t, sr=SR, n_fft=FFT_SIZE, hop_length=FFT_HOP) + 1, written out
    return int(np.floor((segment_seconds * SR - FFT_SIZE // 2) / FFT_HOP)) + 1


@functools.lru_cache(maxsize=1)
def _blas_threads():
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def _one_blas_thread():
    """NumPy's BLAS (OpenBLAS) on one thread for the duration. Its threads busy-wait for a while after
    each call (the mel filter bank product) and take the cores from torch's threads that run the network
    right after: on 2 cores a 30 s clip took 0.18 s instead of 0.12 s (measured). One thread is plenty
    for a (96 x 257) by (257 x frames) product."""
    return _blas_threads().limit(limits=1, user_api="blas")


def log_mel(audio: np.ndarray) -> np.ndarray:
    """musicnn's input representation of 16 kHz audio, computed in float32.

    audio: (samples,) float at 16 kHz. Returns (frames, 96) float32, ``log10(10000 * mel + 1)`` of the
    power mel spectrogram (n_fft 512, hop 256, centred frames: frames = 1 + samples // 256).
    """
    import librosa
    with warnings.catch_warnings(), _one_blas_thread():  # clips shorter than n_fft are fine (centred, zero-padded frames)
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        mel = librosa.feature.melspectrogram(y=np.asarray(audio, dtype=np.float32), sr=SR,
                                             hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS)
    return np.log10(np.float32(10000) * mel.T.astype(np.float32) + np.float32(1)).astype(np.float32)


def patches(spec: np.ndarray, n_frames: int, hop_frames: int | None = None) -> np.ndarray:
    """Cut a (frames, mels) spectrogram into patches of ``n_frames`` starting every ``hop_frames``.

    Returns (segments, n_frames, mels), same dtype; segments = 1 + (frames - n_frames) // hop_frames and
    a tail shorter than a patch is dropped (as musicnn). A spectrogram shorter than one patch gives one
    patch of its frames repeated until they fill it (frame i of the patch is frame i % frames:
    musicnn-training's ``repeat-pad``). Raises BadAudioError for a spectrogram without frames.
    """
    hop_frames = hop_frames or n_frames
    if spec.shape[0] == 0:
        raise BadAudioError("audio too short: no spectrogram frames")
    if spec.shape[0] < n_frames:
        return spec[np.arange(n_frames) % spec.shape[0]][None]
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
    if not np.any(audio):
        raise BadAudioError("audio is silent (every sample is 0)")
    if sr != SR:
        import librosa
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SR, res_type="soxr_hq").astype(np.float32)
    return audio


def _check_choice(model: str, layer: str) -> None:
    if model not in MODELS:
        raise MusicnnError(f"unknown musicnn model '{model}' (expected one of {', '.join(MODELS)})")
    if layer not in LAYERS:
        raise MusicnnError(f"unknown musicnn layer '{layer}' (expected one of {', '.join(LAYERS)})")


# --- the network (torch) ---------------------------------------------------------------------------
# Layouts: patches arrive as musicnn's (batch, frames, mels); the front end sees the spectrogram as an
# image (batch, 1, mels, frames), as the rest of the toolkit does; feature maps after it are
# (batch, channels, frames).
#
# Every front-end filter is followed by ReLU, batch norm and a max over frequency. ReLU and (eval-mode)
# batch norm act on each channel through a monotone function (decreasing where the batch-norm scale
# gamma is negative), so the max is taken first, on the raw convolution: 59x fewer ReLU/BN evaluations
# and the same numbers. Channels with gamma < 0 need the min instead; their filters are negated so one
# max serves all (max(-z) = -min(z), exactly in floating point).


def _max_first_sign(bn: nn.BatchNorm1d) -> torch.Tensor:
    """(filters,) +1 where the batch norm is increasing, -1 where it is decreasing (gamma < 0)."""
    return torch.where(bn.weight < 0, -1.0, 1.0)


class TimbralBlock(nn.Module):
    """Filters spanning part of the mel axis and 7 frames -> ReLU -> batch norm -> max over frequency."""

    def __init__(self, filters: int, mels: int, frames: int):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, (mels, frames))
        self.bn = nn.BatchNorm1d(filters, eps=BN_EPS)  # applied after the max, to (B, filters, T)

    def forward(self, x):  # (B, 1, 96, T + 6), time zero-padded by 3 frames each side
        sign = _max_first_sign(self.bn)
        weight, bias = self.conv.weight * sign[:, None, None, None], self.conv.bias * sign
        mels = weight.shape[2]
        positions = x.shape[2] - mels + 1                     # filter positions along the mel axis
        step = BAND_CHUNK.get(x.device.type, positions)
        z = None
        for start in range(0, positions, step):               # max over positions, a few at a time
            part = F.conv2d(x[:, :, start:min(positions, start + step) + mels - 1], weight, bias)  # (B, filters, step, T)
            part = part.amax(dim=2)
            z = part if z is None else torch.maximum(z, part)
        return self.bn(F.relu(sign[:, None] * z))             # (B, filters, T)


class TemporalBlock(nn.Module):
    """Filters spanning ``frames`` frames of one mel band (a 1-D convolution over time, applied to every
    band) -> ReLU -> batch norm -> max over frequency. Zero padding as TensorFlow's 'same': the extra
    frame of an even length goes at the end."""

    def __init__(self, filters: int, frames: int):
        super().__init__()
        self.pad = ((frames - 1) // 2, frames // 2)
        self.conv = nn.Conv1d(1, filters, frames)
        self.bn = nn.BatchNorm1d(filters, eps=BN_EPS)

    def forward(self, x):  # (B, 1, 96, T)
        batch, _, mels, frames = x.shape
        sign = _max_first_sign(self.bn)
        bands = F.pad(x.reshape(batch * mels, 1, frames), self.pad)                         # (B * 96, 1, T + frames - 1)
        z = F.conv1d(bands, self.conv.weight * sign[:, None, None], self.conv.bias * sign)  # (B * 96, filters, T)
        z = z.view(batch, mels, -1, frames).amax(dim=1)                                     # (B, filters, T)
        return self.bn(F.relu(sign[:, None] * z))


class FrontEnd(nn.Module):
    """Musically motivated filters: 2 timbral + 3 temporal blocks, concatenated along channels."""

    def __init__(self, timbral: int = 204, temporal: int = 51):
        super().__init__()
        self.bn_input = nn.BatchNorm2d(1, eps=BN_EPS)
        self.timbral = nn.ModuleList([TimbralBlock(timbral, int(0.4 * N_MELS), 7),   # 38 x 7
                                      TimbralBlock(timbral, int(0.7 * N_MELS), 7)])  # 67 x 7
        self.temporal = nn.ModuleList([TemporalBlock(temporal, n) for n in (128, 64, 32)])
        self.channels = 2 * timbral + 3 * temporal  # 561

    def forward(self, patches):  # (B, T, 96)
        x = self.bn_input(patches.transpose(1, 2).unsqueeze(1).contiguous())  # (B, 1, 96, T)
        padded = F.pad(x, (3, 3))                                           # (B, 1, 96, T + 6): 'same' in time
        maps = [block(padded) for block in self.timbral] + [block(x) for block in self.temporal]
        return torch.cat(maps, dim=1)                                       # (B, 561, T)


class ConvBlock1d(nn.Module):
    """1-D convolution over time (7 frames, 'same') -> ReLU -> batch norm."""

    def __init__(self, in_channels: int, filters: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, 7, padding=3)
        self.bn = nn.BatchNorm1d(filters, eps=BN_EPS)

    def forward(self, x):  # (B, in_channels, T)
        return self.bn(F.relu(self.conv(x)))  # (B, filters, T)


class MidEnd(nn.Module):
    """Dense 1-D convolutions: three layers, the last two residual; every layer's output is kept."""

    def __init__(self, in_channels: int = 561, filters: int = 64):
        super().__init__()
        self.conv1 = ConvBlock1d(in_channels, filters)
        self.conv2 = ConvBlock1d(filters, filters)
        self.conv3 = ConvBlock1d(filters, filters)

    def forward(self, front):  # (B, 561, T)
        c1 = self.conv1(front)                      # (B, 64, T)
        c2 = self.conv2(c1) + c1                    # (B, 64, T)
        c3 = self.conv3(c2) + c2                    # (B, 64, T)
        return torch.cat([front, c1, c2, c3], 1)    # (B, 753, T): dense connections


class BackEnd(nn.Module):
    """Temporal max and mean pooling -> batch norm -> dense (penultimate) -> batch norm -> tag logits."""

    def __init__(self, channels: int = 753, units: int = 200, tags: int = NUM_TAGS):
        super().__init__()
        self.bn_pool = nn.BatchNorm1d(2 * channels, eps=BN_EPS)
        self.dense = nn.Linear(2 * channels, units)
        self.bn_dense = nn.BatchNorm1d(units, eps=BN_EPS)
        self.logits = nn.Linear(units, tags)

    def forward(self, features):  # (B, 753, T)
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)   # (B, 753) each
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)      # (B, 1506): max0, mean0, max1, ...
        penultimate = self.bn_dense(F.relu(self.dense(self.bn_pool(pooled))))  # (B, 200)
        return {"max_pool": max_pool, "mean_pool": mean_pool, "penultimate": penultimate,
                "taggram": torch.sigmoid(self.logits(penultimate))}          # taggram (B, 50)


class Musicnn(nn.Module):
    """musicnn (Pons & Serra 2019): front end -> mid-end -> back end. ``forward`` maps patches
    (B, frames, 96) float32 to a dict of every layer in LAYERS, each (B, size)."""

    def __init__(self, midend_filters: int = 64, backend_units: int = 200):
        super().__init__()
        self.frontend = FrontEnd()
        self.midend = MidEnd(self.frontend.channels, midend_filters)
        self.backend = BackEnd(self.frontend.channels + 3 * midend_filters, backend_units)

    def forward(self, x):  # (B, T, 96)
        return self.backend(self.midend(self.frontend(x)))


# --- weights: TensorFlow checkpoint -> torch state_dict (cached) -----------------------------------


def _tf_names() -> dict[str, tuple[str, str]]:
    """torch block -> (TensorFlow conv/dense scope, batch-norm scope), in the order musicnn's graph
    creates them (``tf.compat.v1.layers`` numbers scopes by creation)."""
    blocks = ["frontend.timbral.0", "frontend.timbral.1", "frontend.temporal.0", "frontend.temporal.1",
              "frontend.temporal.2", "midend.conv1", "midend.conv2", "midend.conv3"]
    names = {b: (f"conv2d{'' if i == 0 else f'_{i}'}", f"batch_normalization_{i + 1}") for i, b in enumerate(blocks)}
    names["frontend.bn_input"] = ("", "batch_normalization")
    names["backend.bn_pool"] = ("", "batch_normalization_9")
    names["backend.dense"] = ("dense", "")
    names["backend.bn_dense"] = ("", "batch_normalization_10")
    names["backend.logits"] = ("dense_1", "")
    return names


def _convert(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """musicnn's TensorFlow variables -> the state_dict of :class:`Musicnn` (numpy arrays)."""
    state = {}

    def bn(prefix, scope):
        state[f"{prefix}.weight"] = tensors[f"{scope}/gamma"]
        state[f"{prefix}.bias"] = tensors[f"{scope}/beta"]
        state[f"{prefix}.running_mean"] = tensors[f"{scope}/moving_mean"]
        state[f"{prefix}.running_var"] = tensors[f"{scope}/moving_variance"]
        state[f"{prefix}.num_batches_tracked"] = np.array(0, dtype=np.int64)

    for block, (layer, norm) in _tf_names().items():
        if layer.startswith("conv2d"):
            kernel = tensors[f"{layer}/kernel"]                    # (height, width, in, out)
            if block.startswith("midend"):                         # (7, channels, 1, filters)
                kernel = kernel[:, :, 0, :].transpose(2, 1, 0)     # -> (filters, channels, 7)
            elif block.startswith("frontend.temporal"):            # (frames, 1, 1, filters)
                kernel = kernel[:, 0, :, :].transpose(2, 1, 0)     # -> (filters, 1, frames)
            else:                                                  # (frames, mels, 1, filters)
                kernel = kernel.transpose(3, 2, 1, 0)              # -> (filters, 1, mels, frames)
            state[f"{block}.conv.weight"] = kernel
            state[f"{block}.conv.bias"] = tensors[f"{layer}/bias"]
            bn(f"{block}.bn", norm)
        elif layer.startswith("dense"):
            state[f"{block}.weight"] = tensors[f"{layer}/kernel"].T  # (in, out) -> (out, in)
            state[f"{block}.bias"] = tensors[f"{layer}/bias"]
        else:
            bn(block, norm)
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


def _tf_variables() -> list[str]:
    """The checkpoint variables the network needs (the checkpoint also holds Adam's slots)."""
    out = []
    for layer, norm in _tf_names().values():
        out += [f"{layer}/kernel", f"{layer}/bias"] if layer else []
        out += [f"{norm}/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")] if norm else []
    return out


def package_dir() -> Path:
    """Folder of the installed ``musicnn`` package (its model folders live inside)."""
    import importlib.util
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise MusicnnError("the musicnn package is not installed (pip install --no-deps musicnn==0.1.0)")
    return Path(list(spec.submodule_search_locations)[0])


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise MusicnnError(f"{path}: cannot read the musicnn checkpoint ({err.strerror or err})") from None


def _weights_sha256(state) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(state[name]).tobytes())
    return digest.hexdigest()


def weights(model: str = "MSD_musicnn", model_dir=None) -> dict:
    """The state_dict (torch tensors) of ``model``'s network, from the cache or converted now.

    ``model_dir``: a folder holding a musicnn checkpoint (``.index``, ``.data-00000-of-00001``); default
    the installed package's folder of ``model``. The converted file lives at
    ``config.cache_dir()/musicnn/<model>-<key>.pt`` (key: the folder's path and IMPLEMENTATION) and
    records the sha256 of the checkpoint files and of the weights: if either no longer matches, the
    checkpoint is converted again. Raises MusicnnError naming the file if the checkpoint is missing,
    truncated or altered.
    """
    from genrekit import tfcheckpoint
    _check_choice(model, "max_pool")
    folder = Path(model_dir) if model_dir is not None else package_dir() / model
    index = folder / ".index"
    if not index.is_file():
        raise MusicnnError(f"{index}: no musicnn checkpoint here (expected '.index' and '.data-00000-of-00001' "
                           f"in {folder})")
    try:
        shards = tfcheckpoint.Checkpoint(str(folder) + os.sep)
    except tfcheckpoint.CheckpointError as err:
        raise MusicnnError(str(err)) from None
    sources = {p.name: _sha256(p) for p in [index] + [shards.data_path(i) for i in range(shards.num_shards)]}
    key = hashlib.sha256(f"{folder.resolve()}|{model}|{IMPLEMENTATION}".encode()).hexdigest()[:16]
    cached = config.cache_dir() / "musicnn" / f"{model}-{key}.pt"
    try:
        saved = torch.load(cached, map_location="cpu", weights_only=True)
        state = saved["state_dict"]
        if saved["sources"] == sources and saved["weights_sha256"] == _weights_sha256(
                {k: v.numpy() for k, v in state.items()}):
            return state
    except Exception:  # missing, unreadable or stale cache file: convert again (torch raises many types)
        pass
    try:  # every tensor is read and verified (Adam's slots too): an altered file never converts
        tensors = {name: shards.tensor(name) for name in shards.entries}
        arrays = _convert({name: tensors[name] for name in _tf_variables()})
    except tfcheckpoint.CheckpointError as err:
        raise MusicnnError(str(err)) from None
    except KeyError as err:
        raise MusicnnError(f"{index}: not a musicnn checkpoint (no variable {err})") from None
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    record = {"state_dict": state, "sources": sources, "weights_sha256": _weights_sha256(arrays),
              "model": model, "checkpoint": str(folder), "implementation": IMPLEMENTATION}
    try:  # a cache that cannot be written only costs a conversion next time
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        torch.save(record, tmp)
        os.replace(tmp, cached)
    except OSError:
        pass
    return state


@contextlib.contextmanager
def _full_float32():
    """Convolutions and matrix products in full float32 for the duration (cuDNN uses TF32 by default,
    about 1e-3 off); the caller's settings are restored afterwards."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            yield
    finally:
        torch.set_float32_matmul_precision(precision)


class _Network:
    """One musicnn model on the toolkit's device; ``run`` maps patches to every layer."""

    def __init__(self, model: str, model_dir=None):
        from genrekit.train import default_device
        self.device = default_device()
        net = Musicnn()
        net.load_state_dict(weights(model, model_dir), strict=True)
        self.net = net.to(self.device).eval()

    def _forward(self, batch: np.ndarray, start: int, size: int, layers) -> dict:
        """Every layer of patches ``batch[start:start + size]``."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch[start:start + size], dtype=np.float32))
            result = self.net(x.to(self.device))
            return {layer: result[layer].float().cpu().numpy() for layer in layers}

    def run(self, batch: np.ndarray, layers) -> dict[str, np.ndarray]:
        """batch: (segments, frames, 96) float32 -> {layer: (segments, LAYERS[layer]) float32}.

        On the CPU the patches go one at a time to as many worker threads as torch has intra-op
        threads, each worker computing whole patches on one thread: the cores never wait for each other
        inside a patch (about 30 small parallel regions each, costly when OpenMP threads sleep between
        them, as with OMP_WAIT_POLICY=PASSIVE). A patch gives the same result on any worker."""
        size = BATCH.get(self.device.type, 1)
        starts = range(0, len(batch), size)
        workers = torch.get_num_threads() if self.device.type == "cpu" else 1
        with _full_float32():
            if workers > 1:
                # torch.set_num_threads in a worker sets that thread's intra-op threads only
                with ThreadPoolExecutor(workers, thread_name_prefix="musicnn", initializer=torch.set_num_threads,
                                        initargs=(1,)) as pool:
                    parts = list(pool.map(lambda s: self._forward(batch, s, size, layers), starts))
            else:
                parts = [self._forward(batch, s, size, layers) for s in starts]
        return {layer: np.concatenate([p[layer] for p in parts]) if parts else np.zeros((0, LAYERS[layer]), np.float32)
                for layer in layers}


_NETWORKS: dict[tuple[str, str], _Network] = {}
_LOCK = threading.Lock()


def network(model: str = "MSD_musicnn", model_dir=None) -> _Network:
    """The loaded network for ``model`` (cached per model and weights folder); ``.net`` is the nn.Module."""
    _check_choice(model, "max_pool")
    folder = Path(model_dir) if model_dir is not None else package_dir() / model
    key = (model, str(folder.resolve()))
    with _LOCK:
        if key not in _NETWORKS:
            _NETWORKS[key] = _Network(model, folder)
        return _NETWORKS[key]


def clear() -> None:
    """Forget every loaded network (frees the memory; the next call loads again)."""
    with _LOCK:
        _NETWORKS.clear()


# --- public API ------------------------------------------------------------------------------------


def embed_batch(clips, sr: int = config.SAMPLE_RATE, model: str = "MSD_musicnn", layer: str = "max_pool",
                segment_seconds: float = 3.0, hop_seconds: float | None = None,
                model_dir=None) -> list[np.ndarray]:
    """musicnn embeddings of several clips: list of (segments_i, LAYERS[layer]) float32, in clip order.

    clips: list of mono waveforms, each (samples,) float, at ``sr`` Hz (resampled to 16 kHz if needed).
    Each clip is cut into patches of ``segment_seconds`` (3.0 s -> 187 frames, what the models were
    trained on) starting every ``hop_seconds`` (default: ``segment_seconds``, no overlap); a tail shorter
    than a patch is dropped, so a 30 s clip gives 10 segments, and a clip shorter than one patch gives
    one row (its frames repeated to fill the patch). ``model`` is one of MODELS, ``layer`` one of
    LAYERS; ``model_dir`` replaces the packaged weights folder of ``model``.
    All patches of all clips run through the network together; a clip's result is the same (within
    float32 rounding) whether it is embedded alone or with others.
    Raises MusicnnError (one line) for an unknown model or layer, empty, silent or NaN audio, or a
    checkpoint that cannot be read.
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
    flat = network(model, model_dir).run(np.concatenate(cut), [layer])[layer]
    bounds = np.cumsum([len(c) for c in cut])[:-1]
    return list(np.split(flat, bounds))


def embed(audio, sr: int = config.SAMPLE_RATE, model: str = "MSD_musicnn", layer: str = "max_pool",
          segment_seconds: float = 3.0, hop_seconds: float | None = None, model_dir=None) -> np.ndarray:
    """musicnn embedding of one clip, one row per segment: (segments, LAYERS[layer]) float32.

    audio: (samples,) float mono at ``sr`` Hz. Segments as in :func:`embed_batch` (a 30 s clip with
    3 s segments -> (10, 753) for ``max_pool``/``mean_pool``, (10, 200) for ``penultimate``, (10, 50)
    for ``taggram``). Average the rows for one vector per clip.
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
    return network(model, model_dir).run(batch, [layer])[layer]
