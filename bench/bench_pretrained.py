"""Benchmark the pretrained parts on CPU: musicnn embeddings and ResNet18/34 on log-mel segments.

    python bench/bench_pretrained.py                 # prints a table (about a minute on 2 cores)
    python bench/bench_pretrained.py --repeats 5 --batch 32 --skip-original

Rows:
- musicnn (genrekit): seconds per 30 s clip (log-mel + network, MSD_musicnn max_pool, 10 segments),
  once the network is built; the first call's start-up (TensorFlow import, graph, restore) separately;
- musicnn (original): ``musicnn.extractor.extractor`` per 30 s clip, run in a subprocess (it disables
  eager mode process-wide); each call rebuilds its graph and reads the file, as it always does;
- ResNet18/34: forward (eval, no grad) and forward+backward (train) of a batch of 4 s log-mel
  segments, 1 channel x 96 mels x 126 frames, 8 classes.
Times are medians over ``--repeats`` runs after one warm-up.
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


def bench_musicnn_ours(y: np.ndarray, repeats: int) -> dict:
    from genrekit import musicnn
    start = time.perf_counter()
    musicnn.embed(y[: 4 * SR])  # imports TensorFlow, builds and restores the network
    startup = time.perf_counter() - start
    spec = musicnn.patches(musicnn.log_mel(y), musicnn.frames_per_segment(3.0))
    return {
        "startup_s": startup,
        "clip_s": median_time(lambda: musicnn.embed(y), repeats),
        "logmel_s": median_time(lambda: musicnn.log_mel(y), repeats),
        "network_s": median_time(lambda: musicnn.embed_patches(spec), repeats),
    }


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


def bench_musicnn_original(y: np.ndarray, repeats: int) -> dict:
    import soundfile as sf
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        sf.write(wav, y, SR, subtype="FLOAT")
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(ORIGINAL), str(wav), str(repeats)],
                              capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--skip-original", action="store_true", help="do not time musicnn.extractor")
    args = parser.parse_args(argv)

    import torch
    y = synthetic_clip()
    print(f"CPU: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; medians of {args.repeats} runs")
    ours = bench_musicnn_ours(y, args.repeats)
    rows = [("musicnn MSD max_pool, genrekit", "s per 30 s clip", f"{ours['clip_s']:.3f}",
             f"log-mel {ours['logmel_s']:.3f} + network {ours['network_s']:.3f}; first call {ours['startup_s']:.1f} s")]
    if not args.skip_original:
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
