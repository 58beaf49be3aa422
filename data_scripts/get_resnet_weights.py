"""Download torchvision's ImageNet ResNet18/34 weight files into the local weights folder.

    python -m data_scripts.get_resnet_weights                      # both, into $GENREKIT_WEIGHTS_DIR
    python -m data_scripts.get_resnet_weights --arch resnet18 --out ~/weights
    python -m data_scripts.get_resnet_weights --base-url https://mirror.example/models/
    python -m data_scripts.get_resnet_weights --url file:///media/usb/resnet18-f37072fd.pth

As torchvision does, a file named ``<name>-<hex>.pth`` must have a SHA-256 starting with ``<hex>``.
The file is written under a temporary name and renamed only once its hash is right; a file already in
place with the right hash is kept (no download). Exits non-zero with a one-line reason on failure.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from genrekit.resnet import BASE_URL, WEIGHT_FILES, weights_dir

CHUNK_BYTES = 1 << 20


class FetchError(Exception):
    """A download that failed; ``str(err)`` is one line."""


def hash_prefix(filename: str) -> str:
    """The expected SHA-256 prefix in a torchvision file name: 'resnet18-f37072fd.pth' -> 'f37072fd'."""
    match = re.search(r"-([a-f0-9]{6,64})\.", filename)
    if not match:
        raise FetchError(f"{filename}: no hash in the file name (expected NAME-HEX.pth, as torchvision's)")
    return match.group(1)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, out_dir: Path, timeout: float = 60.0, progress: bool = True) -> tuple[Path, bool]:
    """Download ``url`` into ``out_dir`` (file name from the URL) and check its hash prefix.

    Returns (path, downloaded): ``downloaded`` is False when a file with the right hash was already
    there. Raises FetchError (one line); on any failure no new file is left behind.
    """
    name = Path(urllib.parse.urlparse(url).path).name
    if not name:
        raise FetchError(f"{url}: the URL does not end in a file name")
    expected = hash_prefix(name)
    target = out_dir / name
    if target.is_file() and sha256_of(target).startswith(expected):
        return target, False
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(f"{out_dir}: cannot create the folder ({err.strerror})") from None
    tmp = out_dir / f".{name}.{os.getpid()}.part"
    try:
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            from genrekit.progress import bar
            with bar(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as pbar:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    digest.update(block)
                    f.write(block)
                    pbar.update(len(block))
        if not digest.hexdigest().startswith(expected):
            raise FetchError(f"{name}: hash mismatch (SHA-256 {digest.hexdigest()[:16]}..., expected "
                             f"{expected}...): download from {url} is corrupt or not this file")
        os.replace(tmp, target)  # atomic: the target is either absent, old, or complete and checked
    except urllib.error.URLError as err:
        reason = err if isinstance(err, urllib.error.HTTPError) else err.reason  # "HTTP Error 404: ..."
        raise FetchError(f"{url}: cannot download ({reason})") from None
    except (OSError, ValueError) as err:  # socket timeouts, disk full, malformed URLs
        raise FetchError(f"{url}: cannot download ({type(err).__name__}: {err})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target, True


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", choices=sorted(WEIGHT_FILES), default=sorted(WEIGHT_FILES),
                        help="which networks (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="destination folder (default: $GENREKIT_WEIGHTS_DIR or ~/.cache/genrekit/weights)")
    parser.add_argument("--base-url", default=BASE_URL, help=f"where the files live (default: {BASE_URL})")
    parser.add_argument("--url", default=None,
                        help="one full URL (http, https or file) instead of --arch/--base-url; its file "
                             "name must carry the hash prefix, as NAME-HEX.pth")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out_dir = (args.out or weights_dir()).expanduser()
    base = args.base_url if args.base_url.endswith("/") else args.base_url + "/"
    urls = [args.url] if args.url else [base + WEIGHT_FILES[a] for a in args.arch]
    for url in urls:
        try:
            path, downloaded = fetch(url, out_dir, timeout=args.timeout, progress=not args.quiet)
        except FetchError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{'downloaded' if downloaded else 'already there, hash ok'}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
