"""Extract musicnn embeddings for a dataset split into the feature cache (computed once per clip).

    python -m data_scripts.extract_musicnn                                    # synthetic, all subsets
    python -m data_scripts.extract_musicnn --data gtzan8:filtered --split-subset train
    python -m data_scripts.extract_musicnn --data /path/to/dataset --layer penultimate --segment-seconds 4

The notebooks then read the same arrays near-instantly with
``cache.features(functools.partial(musicnn.embed, model=..., layer=..., segment_seconds=...), clips)``
(the cache key includes these keywords and the source of genrekit/musicnn.py, which names its
implementation, so embeddings of another implementation are never reused). A clip shorter than one
segment gives one row (its spectrogram repeat-padded, see genrekit.musicnn); bad clips (unreadable,
empty, silent) are skipped and listed; the command exits non-zero with a one-line reason when the
dataset, the model or the cache cannot be used, or when no clip at all could be embedded.
"""

from __future__ import annotations

import argparse
import functools
import sys

from genrekit import cache, config, data, musicnn
from genrekit.progress import bar


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help=f"dataset name or folder, e.g. 'synthetic', 'gtzan8:filtered' "
                             f"(default: ${config.DATASET_ENV} or '{config.DEFAULT_DATASET}')")
    parser.add_argument("--split-subset", choices=(*data.SPLITS, "all"), default="all",
                        help="which subset of the split set (default: all it has)")
    parser.add_argument("--model", choices=musicnn.MODELS, default="MSD_musicnn")
    parser.add_argument("--layer", choices=tuple(musicnn.LAYERS), default="max_pool")
    parser.add_argument("--segment-seconds", type=float, default=3.0,
                        help="patch length in seconds (default 3.0, what musicnn was trained on)")
    parser.add_argument("--cache-dir", default=None,
                        help=f"feature cache folder (default: ${config.CACHE_DIR_ENV} or ~/.cache/genrekit/features)")
    return parser.parse_args(argv)


def embedder(model: str, layer: str, segment_seconds: float):
    """The feature function whose cache this script fills (pass the same keywords to read it back)."""
    return functools.partial(musicnn.embed, model=model, layer=layer, segment_seconds=segment_seconds)


def extract(ds: data.Dataset, subsets: list[str], fn, cache_dir=None) -> tuple[int, list[str]]:
    """Embed every clip of ``subsets`` through the cache; returns (clips embedded, one line per bad clip)."""
    clips = [c for s in subsets for c in ds.clips(s)]
    done, bad = 0, []
    for clip in bar(clips, desc=f"musicnn {ds.spec} {'+'.join(subsets)}", unit="clip"):
        try:
            cache.features(fn, [clip], cache_dir=cache_dir, progress=False)
            done += 1
        except data.AudioError as err:
            bad.append(str(err))
        except musicnn.BadAudioError as err:  # other MusicnnErrors (model, checkpoint) stop the run
            bad.append(f"{clip.path}: {err}")
    return done, bad


def main(argv=None) -> int:
    args = parse_args(argv)
    data.quiet_warnings()
    try:
        musicnn.frames_per_segment(args.segment_seconds)
        ds = data.open_dataset(args.data)
        subsets = [s for s in data.SPLITS if ds.has(s)] if args.split_subset == "all" else [args.split_subset]
        fn = embedder(args.model, args.layer, args.segment_seconds)
        done, bad = extract(ds, subsets, fn, args.cache_dir)
    except (data.DatasetError, musicnn.MusicnnError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in bad:
        print(f"skipped: {line}")
    print(f"musicnn {args.model}/{args.layer} ({args.segment_seconds:g} s segments): {done} clips of "
          f"{ds.spec} {'+'.join(subsets)} cached, {len(bad)} skipped")
    if done == 0:
        print("error: no clip could be embedded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
