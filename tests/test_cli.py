import subprocess
import sys


def _run(*args, env_dir=None):
    return subprocess.run([sys.executable, "-m", "genrekit", *args], capture_output=True, text=True, timeout=300)


def test_synth_and_info(tmp_path):
    out = tmp_path / "syn"
    res = _run("synth", "--out", str(out), "--clips-per-genre", "4", "--seconds", "1", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "wrote 32 clips" in res.stdout and "ms per clip" in res.stdout
    res = _run("info", str(out))
    assert res.returncode == 0 and "train" in res.stdout and "classical" in res.stdout


def test_errors_exit_nonzero_with_one_line(tmp_path):
    res = _run("info", str(tmp_path / "nothing"))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "unknown dataset" in res.stderr
    res = _run("synth", "--out", str(tmp_path / "x"), "--clips-per-genre", "2", "--quiet")
    assert res.returncode == 1 and "clips-per-genre 2 is too small" in res.stderr
