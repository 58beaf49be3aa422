"""genrekit.resnet (torchvision-compatible ResNet18/34) and data_scripts/get_resnet_weights."""

import functools
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from genrekit import resnet

ROOT = Path(__file__).resolve().parents[1]


# --- the network -----------------------------------------------------------------------------------

@pytest.mark.parametrize("arch, count", [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_parameter_counts_match_torchvision(arch, count):
    """Same parameter count as torchvision's model (a wrong block layout changes it)."""
    assert sum(p.numel() for p in resnet.resnet(arch).parameters()) == count


def test_torchvision_module_names():
    """The state_dict keys torchvision's files use are all there (a sample of each kind)."""
    keys = set(resnet.resnet18().state_dict())
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_mean",
                "layer4.1.conv2.weight", "fc.weight", "fc.bias"):
        assert key in keys, key
    assert "layer1.0.downsample.0.weight" not in keys  # the first stage keeps its shape
    assert len(resnet.resnet34().layer3) == 6


@pytest.mark.parametrize("build", [resnet.resnet18, resnet.resnet34])
def test_saved_state_dict_round_trip(tmp_path, build):
    """A saved state_dict loads with strict=True and reproduces the outputs exactly (eval mode)."""
    torch.manual_seed(0)
    a = build().eval()
    with torch.no_grad():  # make the BN statistics non-trivial so a skipped buffer would show
        for m in a.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "weights.pth"
    torch.save(a.state_dict(), path)
    b = build(weights=path).eval()
    b.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert torch.equal(a.forward_features(x), b.forward_features(x))


def test_output_shapes():
    """224x224 RGB -> (N, 1000); a log-mel (1, 96, 126) -> (N, 8); the embedding is (N, 512)."""
    net = resnet.resnet18().eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 224, 224)).shape == (2, 1000)
        mel_net = resnet.resnet34(in_channels=1, num_classes=8).eval()
        x = torch.randn(3, 1, 96, 126)
        assert mel_net(x).shape == (3, 8)
        assert mel_net.forward_features(x).shape == (3, resnet.EMBEDDING_DIM)


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory):
    """A random-init resnet18 saved as a 3-channel, 1000-class file (the format of torchvision's)."""
    torch.manual_seed(1)
    net = resnet.resnet18().eval()
    path = tmp_path_factory.mktemp("w") / "resnet18-test.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_file_without_bn_step_counters_loads(tmp_path, imagenet_like):
    """torchvision's files predate BN's num_batches_tracked buffers: they still load (and strictly)."""
    rgb, path = imagenet_like
    state = {k: v for k, v in torch.load(path, weights_only=True).items() if "num_batches_tracked" not in k}
    old = tmp_path / "old-format.pth"
    torch.save(state, old)
    net = resnet.resnet18(weights=old).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), rgb(x))


def test_weights_load_only_into_the_imagenet_shape(imagenet_like):
    """Adapting to 1 channel and 8 classes is the students' job: the toolkit refuses to do it for them."""
    _, path = imagenet_like
    for kwargs in ({"in_channels": 1}, {"num_classes": 8}, {"in_channels": 1, "num_classes": 8}):
        with pytest.raises(resnet.WeightsError, match="load them, then adapt") as err:
            resnet.resnet18(weights=path, **kwargs)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not hasattr(resnet, "adapt_conv1")


def test_weight_errors(tmp_path, imagenet_like):
    """Missing, non-weights and mismatched files raise one-line WeightsErrors naming the file."""
    _, r18_path = imagenet_like
    missing = tmp_path / "nope.pth"
    with pytest.raises(resnet.WeightsError, match="not found") as info:
        resnet.resnet18(weights=missing)
    assert str(missing) in str(info.value)

    junk = tmp_path / "junk.pth"
    junk.write_text("not a pickle")
    with pytest.raises(resnet.WeightsError, match="not a PyTorch weights file") as info:
        resnet.resnet18(weights=junk)
    assert str(junk) in str(info.value) and "\n" not in str(info.value)

    nested = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 3, "model": {"conv1.weight": torch.zeros(1)}}, nested)
    with pytest.raises(resnet.WeightsError, match="not a state_dict"):
        resnet.resnet18(weights=nested)

    with pytest.raises(resnet.WeightsError, match="not a resnet34 state_dict: missing") as info:
        resnet.resnet34(weights=r18_path)  # resnet18 file into resnet34: blocks missing
    assert str(r18_path) in str(info.value) and "layer" in str(info.value) and "\n" not in str(info.value)

    state = torch.load(r18_path, weights_only=True)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    bad_shape = tmp_path / "shape.pth"
    torch.save(state, bad_shape)
    with pytest.raises(resnet.WeightsError, match=r"shapes differ \(layer1.0.conv1.weight"):
        resnet.resnet18(weights=bad_shape)


def test_imagenet_name_points_at_the_weights_folder(tmp_path, monkeypatch, imagenet_like):
    """weights='imagenet' reads torchvision's file name from $GENREKIT_WEIGHTS_DIR, or says how to get it."""
    _, path = imagenet_like
    monkeypatch.setenv(resnet.WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(resnet.WeightsError, match="get_resnet_weights"):
        resnet.resnet18(weights="imagenet")
    (tmp_path / resnet.WEIGHT_FILES["resnet18"]).write_bytes(path.read_bytes())
    assert resnet.resnet18(weights="imagenet").fc.out_features == 1000


# --- get_resnet_weights ------------------------------------------------------------------------------

def run_script(*args, timeout=60):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "data_scripts.get_resnet_weights", "--quiet", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def server(tmp_path):
    """A bounded http.server on 127.0.0.1 serving tmp_path/www; yields (base URL, folder); stopped after."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no access log on stderr
            pass

    handler = functools.partial(Quiet, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def weights_file(folder: Path, stem="resnet18", good=True) -> str:
    """Write a weights-like file named STEM-HASH.pth (a wrong hash unless ``good``); returns its name."""
    data = os.urandom(300_000)
    prefix = hashlib.sha256(data).hexdigest()[:8] if good else "00000000"
    name = f"{stem}-{prefix}.pth"
    (folder / name).write_bytes(data)
    return name


def test_download_good_hash(server, tmp_path):
    """A file whose SHA-256 matches its name lands in --out; a second run keeps it without downloading."""
    base, www = server
    name = weights_file(www)
    out = tmp_path / "weights"
    proc = run_script("--url", base + name, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / name).read_bytes() == (www / name).read_bytes()
    assert [p.name for p in out.iterdir()] == [name]  # no temporary file left
    (www / name).unlink()  # the server no longer has it: a re-run must not need it
    again = run_script("--url", base + name, "--out", str(out))
    assert again.returncode == 0 and "already there" in again.stdout


def test_download_base_url_and_file_url(tmp_path):
    """--base-url composes torchvision's file names; file:// URLs work (and are checked too)."""
    www = tmp_path / "mirror"
    www.mkdir()
    name = weights_file(www)
    out = tmp_path / "weights"
    proc = run_script("--url", (www / name).as_uri(), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / name).is_file()
    proc = run_script("--base-url", www.as_uri(), "--arch", "resnet18", "--out", str(out))
    assert proc.returncode == 1  # the mirror has no resnet18-f37072fd.pth
    assert proc.stderr.count("\n") == 1 and "resnet18-f37072fd.pth" in proc.stderr


def test_download_wrong_hash(server, tmp_path):
    """A file whose hash does not match its name: exit 1, one line naming it, nothing left behind."""
    base, www = server
    name = weights_file(www, good=False)
    out = tmp_path / "weights"
    proc = run_script("--url", base + name, "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and name in proc.stderr and "hash mismatch" in proc.stderr
    assert not any(out.iterdir())


def test_download_unreachable(tmp_path):
    """A server that does not answer and a missing file: exit 1 with a one-line reason."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_script("--url", f"http://127.0.0.1:{port}/resnet18-f37072fd.pth", "--out", str(tmp_path),
                      "--timeout", "5")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "cannot download" in proc.stderr


def test_download_404_and_bad_name(server, tmp_path):
    """A 404 and a file name without a hash: exit 1 with a one-line reason."""
    base, _ = server
    proc = run_script("--url", base + "resnet18-f37072fd.pth", "--out", str(tmp_path / "w"))
    assert proc.returncode == 1 and "404" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_script("--url", base + "resnet18.pth", "--out", str(tmp_path / "w"))
    assert proc.returncode == 1 and "no hash in the file name" in proc.stderr
