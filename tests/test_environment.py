"""requirements*.txt and environment.yml list the same pinned packages."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _reqs(name):
    lines = (ROOT / name).read_text().splitlines()
    return {l.strip() for l in lines if l.strip() and not l.strip().startswith("#")}


def test_environment_yml_matches_requirements():
    yml = (ROOT / "environment.yml").read_text()
    pip_pins = {m.group(1) for m in re.finditer(r"^\s+- ([A-Za-z0-9_.\-]+==[^\s#]+)\s*$", yml, re.M)}
    expected = _reqs("requirements.txt") | _reqs("requirements-nodeps.txt")
    assert pip_pins == expected, f"only in environment.yml: {pip_pins - expected}; only in requirements: {expected - pip_pins}"
    assert "python=3.11" in yml


def test_every_requirement_is_pinned_and_torch_exact():
    reqs = _reqs("requirements.txt") | _reqs("requirements-nodeps.txt")
    assert all("==" in r for r in reqs), [r for r in reqs if "==" not in r]
    assert "torch==2.13.0" in reqs
    assert not any(r.split("==")[0] in ("torchvision", "torchaudio") for r in reqs)


def test_tensorflow_only_in_the_optional_extra():
    """TensorFlow is not in the default environment (genrekit.musicnn runs in PyTorch); the optional
    requirements-tf.txt (make musicnn-check) pins it exactly."""
    default = {r.split("==")[0].lower() for r in _reqs("requirements.txt") | _reqs("requirements-nodeps.txt")}
    assert not default & {"tensorflow", "tf_keras", "tf-keras", "keras"}
    assert _reqs("requirements-tf.txt") == {"tensorflow==2.21.0", "tf_keras==2.21.0"}
