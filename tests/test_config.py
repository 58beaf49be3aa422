import io
import re
import tokenize
from pathlib import Path

from genrekit import config

ROOT = Path(__file__).resolve().parents[1]


def test_genres_in_label_order():
    assert config.GENRES == ("classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae")
    assert [config.GENRE_TO_LABEL[g] for g in config.GENRES] == list(range(8))


def test_feature_config_is_plain_and_complete():
    fc = config.feature_config()
    assert fc["sample_rate"] == 16000 and fc["n_fft"] == 1024 and fc["hop_length"] == 512 and fc["n_mels"] == 96
    assert all(isinstance(v, (int, float)) for v in fc.values())


def test_locations_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GENREKIT_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("GENREKIT_CACHE_DIR", str(tmp_path / "c"))
    assert config.data_dir() == tmp_path / "d" and config.cache_dir() == tmp_path / "c"


def test_constants_are_not_duplicated_outside_config():
    """The genre list and the sample rate are spelled out only in genrekit/config.py."""
    offenders = []
    for path in list((ROOT / "genrekit").rglob("*.py")) + list((ROOT / "solutions").rglob("*.py")):
        if path.name == "config.py" or path.name == "musicnn.py":  # musicnn.SR is the pretrained model's own rate
            continue
        text = path.read_text()
        numbers = {t.string.replace("_", "") for t in tokenize.generate_tokens(io.StringIO(text).readline)
                   if t.type == tokenize.NUMBER}
        if re.search(r"\"classical\",\s*\"country\",\s*\"disco\"", text) or "16000" in numbers:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"constants duplicated in {offenders}"
