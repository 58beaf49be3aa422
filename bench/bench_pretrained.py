"""Benchmark the pretrained parts on CPU: musicnn embeddings and ResNet18/34 on log-mel segments.

    python bench/bench_pretrained.py                 # prints a table (about a minute on 2 cores)
    python bench/bench_pretrained.py --repeats 5 --batch 32 --skip-original

Rows:
- musicnn (genrekit, PyTorch): seconds per 30 s clip (log-mel + network, MSD_musicnn max_pool, 10
  segments) once the weights are loaded, alone and as 8 clips per ``embed_batch`` call; the first
  call (weights converted or read from the cache) separately;
- musicnn's arithmetic floor: the network's multiply-accumulates per 30 s clip (counted from its layer
  shapes: 14.0 G, about 80 % of them in the two timbral blocks) divided by this machine's float32 rate on a
  large matrix product, and the share of that rate the network reaches;
- musicnn (TensorFlow version), only when TensorFlow is installed (``make musicnn-check`` builds
  ``.venv-tf`` with it): ``data_scripts/musicnn_tf.py``, the implementation the port replaced, timed
  in a subprocess in the same run, and the speed ratio of the two; without TensorFlow the absolute
  figure alone is printed;
- musicnn (original), only with TensorFlow: ``musicnn.extractor.extractor`` per 30 s clip, in a
  subprocess (it disables eager mode process-wide); each call rebuilds its graph and reads the file;
- ResNet18/34: forward (eval, no grad) and forward+backward (train) of a batch of 4 s log-mel
  segments, 1 channel x 96 mels x 126 frames, 8 classes.
Times are medians over ``--repeats`` runs after one warm-up; the musicnn rows add the CPU time
(all threads), which still compares when other processes share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

SR = 16_000
CLIP_SECONDS = 30.0


def synthetic_clip(seconds: float = CLIP_SECONDS, seed: int = 0) -> np.ndarray:
    """A music-like test signal (two tones, a pulse and noise): (samples,) float32 at 16 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    pulse = (np.sin(2 * np.pi * 2 * t) > 0.95).astype(np.float32)
    y = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 331 * t) + 0.3 * pulse * rng.standard_normal(t.size)
    return (y + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_cpu_time(fn, repeats: int) -> float:
    """Median CPU time of ``fn()`` (all threads of this process) in seconds, after one warm-up run:
    on a busy machine, where wall times mostly measure the other processes, this one still compares."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def bench_musicnn_ours(y: np.ndarray, repeats: int) -> dict:
    from genrekit import musicnn
    start = time.perf_counter()
    musicnn.embed(y[: 4 * SR])  # imports torch, converts or loads the weights
    startup = time.perf_counter() - start
    spec = musicnn.patches(musicnn.log_mel(y), musicnn.frames_per_segment(3.0))
    return {
        "startup_s": startup,
        "clip_s": median_time(lambda: musicnn.embed(y), repeats),
        "clip_cpu_s": median_cpu_time(lambda: musicnn.embed(y), repeats),
        "batch8_clip_s": median_time(lambda: musicnn.embed_batch([y] * 8), repeats) / 8,
        "logmel_s": median_time(lambda: musicnn.log_mel(y), repeats),
        "network_s": median_time(lambda: musicnn.embed_patches(spec), repeats),
        "patches": len(spec),
    }


def musicnn_macs_per_patch() -> int:
    """Multiply-accumulates of one musicnn forward pass on a 3 s patch (187 frames x 96 mels), counted
    from the layers' shapes: the timbral filters at every mel position, the temporal filters on every
    band, the mid-end's 1-D convolutions, the back end's dense layers."""
    from genrekit import musicnn
    net, frames, mels = musicnn.Musicnn(), musicnn.frames_per_segment(3.0), musicnn.N_MELS
    macs = 0
    for block in net.frontend.timbral:
        filters, _, height, width = block.conv.weight.shape
        macs += filters * height * width * (mels - height + 1) * frames
    for block in net.frontend.temporal:
        filters, _, width = block.conv.weight.shape
        macs += filters * width * mels * frames
    for block in (net.midend.conv1, net.midend.conv2, net.midend.conv3):
        out_ch, in_ch, width = block.conv.weight.shape
        macs += out_ch * in_ch * width * frames
    return macs + net.backend.dense.weight.numel() + net.backend.logits.weight.numel()


def matmul_macs_per_second(size: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 rate on a large matrix product with torch's threads: the practical peak."""
    import torch
    a, b = torch.randn(size, size), torch.randn(size, size)
    return size ** 3 / median_time(lambda: a @ b, repeats)


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported here (checked without importing it)."""
    import importlib.util
    return importlib.util.find_spec("tensorflow") is not None


TF_VERSION = """
    import json, statistics, sys, time
    import numpy as np
    from data_scripts import musicnn_tf
    y, repeats = np.load(sys.argv[1]), int(sys.argv[2])
    musicnn_tf.embed(y[: 4 * musicnn_tf.SR])  # imports TensorFlow, builds and restores the graph
    def median(fn, clock=time.perf_counter):
        fn()
        times = []
        for _ in range(repeats):
            start = clock()
            fn()
            times.append(clock() - start)
        return statistics.median(times)
    spec = musicnn_tf.patches(musicnn_tf.log_mel(y), musicnn_tf.frames_per_segment(3.0))
    print(json.dumps({"clip_s": median(lambda: musicnn_tf.embed(y)),
                      "clip_cpu_s": median(lambda: musicnn_tf.embed(y), time.process_time),
                      "network_s": median(lambda: musicnn_tf.embed_patches(spec))}))
"""

ORIGINAL = """
    import json, os, statistics, sys, time, contextlib, io
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from musicnn.extractor import extractor
    wav, repeats = sys.argv[1], int(sys.argv[2])
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            extractor(wav, model="MSD_musicnn", input_length=3, extract_features=True)
        times.append(time.perf_counter() - start)
    print(json.dumps({"clip_s": statistics.median(times[1:])}))
"""


def _subprocess(code: str, y: np.ndarray, repeats: int, as_wav: bool) -> dict:
    """Run ``code`` in a fresh interpreter of this venv with the clip's file path and ``repeats``;
    returns its last stdout line as JSON, or {"error": last stderr line}."""
    import soundfile as sf
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("clip.wav" if as_wav else "clip.npy")
        if as_wav:
            sf.write(path, y, SR, subtype="FLOAT")
        else:
            np.save(path, y)
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(path), str(repeats)],
                              capture_output=True, text=True, timeout=600, cwd=root, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_musicnn_tensorflow(y: np.ndarray, repeats: int) -> dict:
    return _subprocess(TF_VERSION, y, repeats, as_wav=False)


def bench_musicnn_original(y: np.ndarray, repeats: int) -> dict:
    return _subprocess(ORIGINAL, y, repeats, as_wav=True)


def bench_resnet(arch: str, batch: int, repeats: int) -> dict:
    import torch
    from genrekit import resnet
    torch.manual_seed(0)
    net = resnet.resnet(arch, in_channels=1, num_classes=8)
    x = torch.randn(batch, 1, 96, 126)
    y = torch.randint(0, 8, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward():
        net.eval()
        with torch.no_grad():
            net(x)

    def forward_backward():
        net.train()
        net.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()

    return {"params": sum(p.numel() for p in net.parameters()),
            "forward_s": median_time(forward, repeats), "train_s": median_time(forward_backward, repeats)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--batch", type=int, default=16, help="ResNet batch of 4 s log-mel segments")
    parser.add_argument("--skip-original", action="store_true",
                        help="do not time musicnn.extractor (timed only when TensorFlow is installed)")
    args = parser.parse_args(argv)

    import torch
    y = synthetic_clip()
    print(f"CPU: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; medians of {args.repeats} runs")
    ours = bench_musicnn_ours(y, args.repeats)
    with_tf = tensorflow_installed()
    rows = [("musicnn MSD max_pool, genrekit (torch)", "s per 30 s clip", f"{ours['clip_s']:.3f}",
             f"cpu {ours['clip_cpu_s']:.3f} s; log-mel {ours['logmel_s']:.3f} + network {ours['network_s']:.3f}; "
             f"{ours['batch8_clip_s']:.3f} per clip in batches of 8; first call {ours['startup_s']:.1f} s"
             + ("" if with_tf else "; no TensorFlow here, so no ratio (run this in the .venv-tf of make musicnn-check)"))]
    clip_macs = musicnn_macs_per_patch() * ours["patches"]
    peak = matmul_macs_per_second()
    floor = clip_macs / peak
    rows.append(("musicnn network, arithmetic floor", "s per 30 s clip", f"{floor:.3f}",
                 f"{clip_macs / 1e9:.2f} G multiply-accumulates per clip at this machine's float32 matmul rate "
                 f"({peak / 1e9:.0f} G/s, 2048^3 product); the network runs at {floor / ours['network_s']:.0%} of it"))
    if with_tf:
        tf = bench_musicnn_tensorflow(y, args.repeats)
        if "clip_s" in tf:
            rows.append(("musicnn MSD max_pool, TensorFlow version", "s per 30 s clip", f"{tf['clip_s']:.3f}",
                         f"cpu {tf['clip_cpu_s']:.3f} s; network {tf['network_s']:.3f}; torch is "
                         f"{tf['clip_s'] / ours['clip_s']:.2f}x faster per clip ({tf['clip_cpu_s'] / ours['clip_cpu_s']:.2f}x "
                         f"in cpu time), {tf['network_s'] / ours['network_s']:.2f}x for the network (same run)"))
        else:
            rows.append(("musicnn MSD max_pool, TensorFlow version", "s per 30 s clip", "failed", tf["error"]))
    if with_tf and not args.skip_original:
        orig = bench_musicnn_original(y, args.repeats)
        rows.append(("musicnn MSD, musicnn.extractor", "s per 30 s clip",
                     f"{orig['clip_s']:.3f}" if "clip_s" in orig else "failed",
                     orig.get("error", "subprocess; rebuilds graph each call")))
    for arch in ("resnet18", "resnet34"):
        r = bench_resnet(arch, args.batch, args.repeats)
        note = f"{r['params']:,} params; batch {args.batch} x 1 x 96 x 126"
        rows.append((f"{arch} forward (eval)", "s per batch", f"{r['forward_s']:.3f}", note))
        rows.append((f"{arch} forward+backward", "s per batch", f"{r['train_s']:.3f}", note))

    widths = [max(len(row[i]) for row in rows + [("what", "unit", "time", "")]) for i in range(3)]
    print(f"{'what':<{widths[0]}}  {'unit':<{widths[1]}}  {'time':>{widths[2]}}  notes")
    for what, unit, value, note in rows:
        print(f"{what:<{widths[0]}}  {unit:<{widths[1]}}  {value:>{widths[2]}}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
