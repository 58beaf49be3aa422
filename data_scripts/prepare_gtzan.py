"""Prepare real GTZAN (8 genres, fault-filtered split) as the project's ``gtzan8`` dataset folder.

Usage::

    python -m data_scripts.prepare_gtzan --out DATA/gtzan8                     # download (mirdata)
    python -m data_scripts.prepare_gtzan --out DATA/gtzan8 --source genres.tar.gz
    python -m data_scripts.prepare_gtzan --out DATA/gtzan8 --source ~/gtzan/genres_original

Prints a summary (clips per genre and split, duration, checksums, problems). Exits 0 when every clip
of the split lists was prepared; otherwise 1 with a one-line reason (what could be prepared is kept).
See :mod:`genrekit.gtzan` for what is checked and how problems are handled.
"""

from __future__ import annotations

import argparse
import sys

from genrekit import config, gtzan
from genrekit.data import DatasetError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_scripts.prepare_gtzan", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="dataset folder to write (e.g. $GENREKIT_DATA_DIR/gtzan8)")
    parser.add_argument("--source", help="local GTZAN folder or .tar.gz/.zip archive (default: download with mirdata)")
    parser.add_argument("--checksums", help="mirdata gtzan_genre index JSON to verify a local copy against")
    parser.add_argument("--clip-seconds", type=float, default=config.CLIP_SECONDS,
                        help="expected clip length: shorter than half is skipped as truncated (default %(default)s)")
    parser.add_argument("--force", action="store_true", help="rewrite clips that are already prepared")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run the preparation; return the exit status (0 complete, 1 incomplete or failed)."""
    args = parse_args(argv)
    try:
        report = gtzan.prepare(args.out, args.source, checksums=args.checksums, force=args.force,
                               clip_seconds=args.clip_seconds,
                               progress=not args.no_progress)
    except (gtzan.GtzanError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(gtzan.format_summary(report))
    if not report.complete:
        print(f"error: incomplete: {report.reason()}", file=sys.stderr)
        return 1
    print(f"done: {report.root} (open with genrekit.data.open_dataset('{gtzan.DATASET_NAME}:{gtzan.DEFAULT_SPLIT}'))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
