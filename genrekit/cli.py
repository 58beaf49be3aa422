"""``genrekit`` command line: build the synthetic dataset, describe a dataset.

    genrekit synth --out DIR [--clips-per-genre N] [--seconds S] [--seed K]
    genrekit info DATASET            (a name such as synthetic, gtzan8:580, or a folder)

Every command exits 0 when it did its job, else 1 with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

from genrekit import config


def _synth(args) -> None:
    from genrekit import synth
    start = time.perf_counter()
    out = synth.build(args.out, args.clips_per_genre, args.seconds, args.seed, progress=not args.quiet)
    n = args.clips_per_genre * config.NUM_CLASSES
    took = time.perf_counter() - start
    print(f"wrote {n} clips of {args.seconds:g} s to {out} in {took:.1f} s ({took / n * 1000:.0f} ms per clip)")


def _info(args) -> None:
    from genrekit import data
    ds = data.open_dataset(args.dataset)
    print(f"dataset {ds.spec} at {ds.root}")
    print(f"{'subset':<7}" + "".join(f"{g[:9]:>10}" for g in config.GENRES) + f"{'total':>8}")
    for subset in data.SPLITS:
        if ds.has(subset):
            labels = ds.labels(subset)
            counts = [int((labels == i).sum()) for i in range(config.NUM_CLASSES)]
            print(f"{subset:<7}" + "".join(f"{c:>10}" for c in counts) + f"{len(labels):>8}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="genrekit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synth", help="write the synthetic GTZAN-layout dataset")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--clips-per-genre", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_synth)
    p = sub.add_parser("info", help="clips per genre and subset of a dataset")
    p.add_argument("dataset", help="synthetic, gtzan8[:split] or a dataset folder")
    p.set_defaults(run=_info)
    args = parser.parse_args(argv)
    if args.command == "synth":
        from genrekit import synth
        args.clips_per_genre = args.clips_per_genre or synth.DEFAULT_CLIPS_PER_GENRE
        args.seconds = args.seconds or synth.DEFAULT_SECONDS
        args.seed = synth.DEFAULT_SEED if args.seed is None else args.seed
    try:
        args.run(args)
    except KeyboardInterrupt:
        print("genrekit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every expected failure carries a one-line message
        print(f"genrekit {args.command}: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
