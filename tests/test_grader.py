"""The grader itself: full marks for the reference, none for the blank student version, and a plausible
wrong answer loses exactly the points of the tests aimed at it; broken submissions get a row that says
why and never stop the batch.

One module-scoped batch: the reference notebooks, executed once per session with real training
(``reference_run`` in conftest.py), give the checkpoints; submissions are built from the released
notebooks plus a variant of the student package and graded together with real nbgrader runs.
"""

import csv
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from autograder import grade as grading
from autograder import thresholds, timing
from autograder.course import ASSIGNMENT, ASSIGNMENT_DIR, SOLUTIONS, nbgrader_env
from autograder.measure import PROBES_ALLOWANCE
from autograder.parts import PARTS
from genrekit import checkpoint

from conftest import TEST_DATA

PACKAGE_FILES = tuple(f for f in grading.student_files() if f.startswith("genre/"))


def _graded_cells() -> tuple[dict, dict]:
    """{grade id: points} of the automatically graded cells and of the written answers (manual)."""
    import nbformat
    auto, manual = {}, {}
    for nb_path in sorted((SOLUTIONS / ASSIGNMENT).glob("*.ipynb")):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                (manual if cell.cell_type == "markdown" else auto)[meta["grade_id"]] = meta["points"]
    return auto, manual


ALL_AUTO, MANUAL = _graded_cells()
ACCURACY_TESTS = {p.cell: ALL_AUTO[p.cell] for p in PARTS}
STUCK = "2_segments"  # the stuck lane's notebook that never finishes (1_baseline is graded in the other lane)
# the grader takes students in name order: these two, which mostly wait for their time limits, are named
# to be graded first, beside the submissions that keep the two cores busy
ENDLESS_ID, STUCK_ID = "0_endless_loop", "0_stuck_lane"
ACCURACY_TIMEOUT = 60  # seconds per measurement in the batch, probes' allowance aside (the slowest honest
                       # measurement, probes included, takes about 60 s with 4 submissions on 2 cores)
CODE_TESTS = {t: pts for t, pts in ALL_AUTO.items() if t not in ACCURACY_TESTS}
PART3_CODE = {t for t in CODE_TESTS if t.startswith(("test_add_noise", "test_time_", "test_augment_set"))}

# plausible wrong answers: file -> (solution text, wrong text)
NO_DB = ("genre/features.py", "return librosa.power_to_db(mel_power, ref=np.max, top_db=config.TOP_DB).astype(np.float32)",
         "return (mel_power / mel_power.max()).astype(np.float32)")
NO_RELU = ("genre/models.py", "return self.pool(torch.relu(self.bn(self.conv(x))))", "return self.pool(self.bn(self.conv(x)))")
WRONG_AXIS = ("genre/models.py", "return self.blocks(self.input_bn(x)).mean(dim=(2, 3))",
              "return self.blocks(self.input_bn(x)).mean(dim=(1, 3))")
SYNTAX_ERROR = ("genre/features.py", "def log_mel(y: np.ndarray, sr: int = config.SAMPLE_RATE) -> np.ndarray:",
                "def log_mel(y: np.ndarray, sr: int = config.SAMPLE_RATE) -> np.ndarray")
# an endless loop that waits rather than spins: the grader's time limits are what is tested, and CI's
# two cores stay free for the other submissions
ENDLESS = ("genre/features.py", "    mel_power = librosa.feature.melspectrogram(",
           "    while True:\n        __import__('time').sleep(0.05)\n    mel_power = librosa.feature.melspectrogram(")
# part 2
OFF_BY_ONE = ("genre/segments.py", "starts = range(0, frames - seg_frames + 1, hop_frames)",
              "starts = range(0, frames - seg_frames, hop_frames) or [0]")
DROPS_SHORT = ("genre/segments.py", '''        return np.pad(S, ((0, 0), (0, seg_frames - frames)), mode="wrap")[None]''',
               "        return np.zeros((0, S.shape[0], seg_frames), np.float32)")
ACROSS_CLIPS = ("genre/segments.py", "    cut = [segment(f, seg_frames, hop_frames) for f in features]",
                "    whole = segment(np.concatenate(features, axis=1), seg_frames, hop_frames)\n"
                "    cut = np.array_split(whole, np.cumsum([f.shape[1] for f in features])[:-1] // hop_frames)")
MEAN_OF_LOGITS = ("genre/segments.py", "        per_segment = torch.softmax(logits, dim=1).numpy()",
                  "        per_segment = logits.numpy()")
VOTE_FOR_MEAN = ("genre/segments.py", '''    if method == "mean":''', '''    if method == "never":''')
# part 3
FIXED_NOISE = ("genre/augment.py", "    noise_power = signal_power / 10 ** (snr_db / 10)", "    noise_power = 10 ** (-snr_db / 10)")
# parts 4 and 5 (the musicnn pooling feeds both part 4 models and, through the fusion, the final model)
MEAN_ONLY_POOL = ("genre/fusion.py", "return np.concatenate([frames.mean(axis=0), frames.max(axis=0)]).astype(np.float32)",
                  "return frames.mean(axis=0).astype(np.float32)")
QUERY_COUNTED = ("genre/retrieval.py", "    np.fill_diagonal(sim, -np.inf)  # leave the query out\n", "")
ONE_LR = ("genre/finetune.py", '{"params": backbone, "lr": backbone_lr, "name": "backbone"}',
          '{"params": backbone, "lr": head_lr, "name": "backbone"}')
ONE_CHANNEL_CONV1 = ("genre/finetune.py", "conv.weight.copy_(old.weight.sum(dim=1, keepdim=True))",
                     "conv.weight.copy_(old.weight[:, :1])")
# eight mistakes in one submission (their tests are disjoint: each loses its own points)
MIXED = "no_db-off_by_one-fixed_noise-wrong_axis-across_clips-no_relu-mean_of_logits-resampled_stretch"
RESAMPLED_STRETCH = ("genre/augment.py", "    out = librosa.effects.time_stretch(y.astype(np.float32), rate=rate)",
                     "    out = librosa.resample(y.astype(np.float32), orig_sr=rate * 16000, target_sr=16000)")


def _submission(root: Path, student: str, solved: bool = True, edits=(), ckpts: Path | None = None,
                answer: str | None = None) -> None:
    """The released notebooks + the student package (solved, possibly with edits) + checkpoints."""
    dest = root / student / ASSIGNMENT
    shutil.copytree(ASSIGNMENT_DIR / ASSIGNMENT, dest)
    if solved:
        for rel in PACKAGE_FILES:
            shutil.copy2(SOLUTIONS / ASSIGNMENT / rel, dest / rel)
    for rel, old, new in edits:
        text = (dest / rel).read_text()
        assert old in text, f"test out of date: '{old}' not in {rel}"
        (dest / rel).write_text(text.replace(old, new, 1))
    if answer:
        import nbformat
        nb_path = dest / "1_baseline.ipynb"
        nb = nbformat.read(nb_path, as_version=4)
        (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer_confusion"]
        cell.source = answer
        nbformat.write(nb, nb_path)
    if ckpts:
        shutil.copytree(ckpts, dest / "checkpoints", ignore=shutil.ignore_patterns("*.png"))


@pytest.fixture(scope="module")
def trained(reference_run):
    """The checkpoints of the reference notebooks (executed once per session)."""
    return reference_run / "checkpoints"


@pytest.fixture(scope="module")
def batch(trained, tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    one_class = tmp_path_factory.mktemp("ckpt_one_class")
    for part in PARTS[:3]:  # same format, classifier rewired to always answer "classical"
        ckpt = checkpoint.load(trained.parent / part.checkpoint)
        ckpt["state_dict"]["classifier.weight"].zero_()
        ckpt["state_dict"]["classifier.bias"].copy_(torch.arange(8, 0, -1, dtype=torch.float32))
        torch.save(ckpt, one_class / Path(part.checkpoint).name)
    bad = tmp_path_factory.mktemp("ckpt_bad")  # one bad checkpoint per part, each refused or at chance:
    # no part 1 checkpoint at all, a one-class part 2,
    shutil.copy2(one_class / "part2_segments.pt", bad)
    ckpt = checkpoint.load(trained / "part3_augmented.pt")  # part 3 trained on a test clip,
    from genrekit import data
    ckpt["extra"]["augmentation"]["sources"].append(data.open_dataset(TEST_DATA).clips("test")[3].id)
    torch.save(ckpt, bad / "part3_augmented.pt")
    ckpt = checkpoint.load(trained / "part4_mlp.pt")  # an MLP with non-finite normalisation statistics,
    ckpt["state_dict"]["norm.std"][5] = float("nan")
    torch.save(ckpt, bad / "part4_mlp.pt")
    ckpt = checkpoint.load(trained / "part4_fusion.pt")  # a fusion fitted on embeddings of another size,
    for key in ("emb_norm.mean", "emb_norm.std"):
        ckpt["state_dict"][key] = ckpt["state_dict"][key][:400].clone()
    torch.save(ckpt, bad / "part4_fusion.pt")
    ckpt = checkpoint.load(trained / "part5_resnet.pt")  # a ResNet head of the wrong size,
    ckpt["state_dict"]["net.fc.weight"] = ckpt["state_dict"]["net.fc.weight"][:5].clone()
    ckpt["state_dict"]["net.fc.bias"] = ckpt["state_dict"]["net.fc.bias"][:5].clone()
    torch.save(ckpt, bad / "part5_resnet.pt")
    ckpt = checkpoint.load(trained / "part5_final.pt")  # final weights that do not sum to 1
    ckpt["extra"]["late_fusion"]["members"] = {m: 0.9 for m in ckpt["extra"]["late_fusion"]["members"]}
    torch.save(ckpt, bad / "part5_final.pt")

    _submission(subs, "reference", ckpts=trained, answer="Pop and country: same backbeat and guitars.")
    # several independent mistakes per submission (their cells are disjoint): each loses its own points
    _submission(subs, MIXED, edits=(NO_DB, OFF_BY_ONE, FIXED_NOISE, WRONG_AXIS, ACROSS_CLIPS, NO_RELU, MEAN_OF_LOGITS,
                                    RESAMPLED_STRETCH), ckpts=trained)
    _submission(subs, "drops_short-and-vote_for_mean", edits=(DROPS_SHORT, VOTE_FOR_MEAN), ckpts=trained)
    _submission(subs, "mean_only_pool-and-query_counted-and-one_lr-and-one_channel_conv1",
                edits=(MEAN_ONLY_POOL, QUERY_COUNTED, ONE_LR, ONE_CHANNEL_CONV1), ckpts=trained)
    _submission(subs, "bad_checkpoints", ckpts=bad)
    _submission(subs, "syntax_error", edits=(SYNTAX_ERROR,), ckpts=trained)
    _submission(subs, ENDLESS_ID, edits=(ENDLESS,), ckpts=trained)
    # two notebooks, one of which never finishes (its kernel ignores interrupts): its lane is stopped at
    # the limit derived from the reference's grading time, the other lane's notebook keeps its points
    _submission(subs, STUCK_ID, ckpts=trained)
    for nb in (subs / STUCK_ID / ASSIGNMENT).glob("*.ipynb"):
        if nb.stem not in ("1_baseline", STUCK):
            nb.unlink()
    nb_path = subs / STUCK_ID / ASSIGNMENT / f"{STUCK}.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                                 "time.sleep(10**6)"))
    nbformat.write(nb, nb_path)
    # the blank student version, plus its own "grader" that would forge every result if imported
    _submission(subs, "blank", solved=False)
    fake = subs / "blank" / ASSIGNMENT / "autograder"
    (fake / "checks").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "measure.py").write_text('print(\'{"accuracy": 1.0, "n": 48, "dataset": "synthetic:default"}\')\n')
    (fake / "checks" / "__init__.py").write_text("")
    (fake / "checks" / "part1.py").write_text("def __getattr__(name):\n    return lambda *a, **k: None\n")
    (subs / "blank" / ASSIGNMENT / "sitecustomize.py").write_text("print('imported')\n")
    out = tmp_path_factory.mktemp("grades")
    # 4 at once: the stuck and the endless submissions (graded first) mostly wait, two others at a time
    # use the two cores meanwhile
    results = grading.grade(subs, out, TEST_DATA, jobs=4, cell_timeout=20, accuracy_timeout=ACCURACY_TIMEOUT,
                            progress=False)
    return {r.student: r for r in results}, out


def _lost(result, tests=ALL_AUTO):
    return {t for t in tests if result.scores.get(t) != ALL_AUTO[t]}


def test_reference_gets_full_marks(batch):
    results, _ = batch
    ref = results["reference"]
    assert ref.status == "ok", ref.status
    assert {t: ref.scores[t] for t in ALL_AUTO} == ALL_AUTO
    assert ref.scores["answer_confusion"] is None, "a written answer is left for manual grading"
    assert results["blank"].scores["answer_confusion"] == 0, "an unanswered question scores 0 (nbgrader)"
    for part in PARTS:
        limits = thresholds.entry(part.id, f"{TEST_DATA}:default", start=ref.accuracy[part.id].get("start_weights"))
        assert ref.accuracy[part.id]["accuracy"] >= limits["pass"], part.id
    assert ref.accuracy["part2_segments"]["segment_seconds"] == 4.0


def test_every_graded_cell_is_accounted_for(batch):
    results, _ = batch
    assert set(results["reference"].scores) == set(ALL_AUTO) | set(MANUAL)


def test_blank_student_version_gets_nothing(batch):
    results, _ = batch
    blank = results["blank"]
    assert all(blank.scores[t] == 0 for t in ALL_AUTO), blank.scores
    assert "checkpoint not found" in blank.status


@pytest.mark.parametrize("student, aimed_at", [
    # the embedding feeds the classifier and part 4's fusion (its CNN branch): a wrong pooling axis
    # breaks forward and every FusionNet test too; the ConvBlock, the aggregation, the dB scale, the
    # segmentation, the noise level and the stretch are tested on their own
    (MIXED, {"test_log_mel_db", "test_segment", "test_add_noise_level", "test_baseline_embed",
             "test_baseline_forward", "test_segment_clips", "test_fusion_forward", "test_fusion_branches", "test_fusion_normalisation", "test_fusion_freeze", "test_fusion_cnn_dropout",
             "test_conv_block", "test_clip_probabilities", "test_time_stretch_pitch"}),
    # a short clip dropped by segment is a clip lost by segment_clips
    ("drops_short-and-vote_for_mean", {"test_segment", "test_segment_clips", "test_clip_probabilities"}),
    ("mean_only_pool-and-query_counted-and-one_lr-and-one_channel_conv1",
     {"test_pool_frames", "test_neighbours_query", "test_param_groups_lr", "test_adapt_conv1"}),
])
def test_a_wrong_answer_loses_exactly_its_tests(batch, student, aimed_at):
    results, _ = batch
    assert _lost(results[student], CODE_TESTS) == aimed_at
    assert all(results[student].scores[t] == 0 for t in aimed_at)


def test_part2_accuracy_uses_the_students_aggregation(batch):
    """The grader measures with the student's own code: its segmentation and aggregation as written."""
    results, _ = batch
    ref = results["reference"].accuracy["part2_segments"]
    votes = results["drops_short-and-vote_for_mean"].accuracy["part2_segments"]
    assert "accuracy" in votes and votes["segments"] == ref["segments"]
    crossing = results[MIXED].accuracy["part2_segments"]
    assert "error" in crossing, "a BaselineCNN whose embedding has the wrong size cannot be measured"


def test_pooling_feeds_part4_and_the_final_model(batch):
    """Mean-only pooling makes vectors half the size the part 4 checkpoints were trained on: both part 4
    models and the final model (the fusion is its member) lose their accuracy points with a reason; the
    ResNet, measured without musicnn, keeps its points (a one-channel conv1 costs only its code test)."""
    results, _ = batch
    r = results["mean_only_pool-and-query_counted-and-one_lr-and-one_channel_conv1"]
    lost = {"test_accuracy_mlp", "test_accuracy_fusion", "test_accuracy_final"}
    assert _lost(r, ACCURACY_TESTS) == lost and all(r.scores[t] == 0 for t in lost)
    for part in ("part4_mlp", "part4_fusion", "part5_final"):
        assert "error" in r.accuracy[part] and "1506" in r.accuracy[part]["error"], r.accuracy[part]
    assert r.accuracy["part5_resnet"]["accuracy"] == results["reference"].accuracy["part5_resnet"]["accuracy"]


def test_bad_checkpoints_lose_exactly_their_accuracy_points(batch):
    """A missing checkpoint, a one-class model (measured at chance), a part 3 model trained on a test
    clip and a bad checkpoint of each later part lose their accuracy points with their reasons; the
    code points are all kept. (A checkpoint without segment settings: tests/test_measure.py.)"""
    results, _ = batch
    r = results["bad_checkpoints"]
    assert _lost(r) == set(ACCURACY_TESTS) and all(r.scores[t] == 0 for t in ACCURACY_TESTS)
    assert "checkpoints/part1_baseline.pt: checkpoint not found" in r.accuracy["part1_baseline"]["error"]
    assert "checkpoint not found" in r.status
    assert r.accuracy["part2_segments"]["accuracy"] == pytest.approx(1 / 8, abs=0.05)
    assert r.accuracy["part2_segments"]["predicted_classes"] == 1
    assert "trained on 1 validation or test clips" in r.accuracy["part3_augmented"]["error"]
    assert "normalisation statistics are not finite" in r.accuracy["part4_mlp"]["error"]
    assert "takes 400-dim musicnn vectors, the grader's are 1506" in r.accuracy["part4_fusion"]["error"]
    assert "the head has 5 outputs, expected 8" in r.accuracy["part5_resnet"]["error"]
    assert "the member weights sum to 1.8, expected 1" in r.accuracy["part5_final"]["error"]
    assert all(r.accuracy[p.id]["error"].startswith(p.checkpoint) for p in PARTS[3:]), "each reason names its file"


@pytest.mark.parametrize("student, lost, reason", [
    # part 3's notebook imports genre.augment before genre.features: the student's effects still score;
    # the part 4 MLP is measured without the front end (pooled musicnn rows): its accuracy still counts
    ("syntax_error", set(ALL_AUTO) - PART3_CODE - {"test_accuracy_mlp"}, "SyntaxError"),
    (ENDLESS_ID, {"test_log_mel_shape", "test_log_mel_db", *ACCURACY_TESTS},
     f"longer than {ACCURACY_TIMEOUT + PROBES_ALLOWANCE:.0f} s"),
])
def test_broken_submissions_get_a_row_that_says_why(batch, student, lost, reason):
    results, _ = batch
    r = results[student]
    assert _lost(r) == lost, r.scores
    assert reason in r.status


def test_outputs_csv_gradebook_feedback(batch):
    results, out = batch
    with open(out / "grades.csv") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(results), "every submission has a row: the batch went on"
    assert float(rows["reference"]["total"]) == sum(ALL_AUTO.values())
    assert float(rows["reference"]["max"]) == sum(ALL_AUTO.values()) + sum(MANUAL.values())
    # the reference answered the part 1 question only; unanswered questions score 0 (nbgrader)
    assert rows["reference"]["manual_pending"] == "answer_confusion"
    assert rows["reference"]["part2_segments_accuracy"]
    assert float(rows["blank"]["total"]) == 0 and float(rows[MIXED]["test_conv_block"]) == 0
    with sqlite3.connect(out / "gradebook.db") as db:
        students = {s for (s,) in db.execute("select id from student")}
    assert students == set(results)
    html = (out / "feedback" / "reference" / ASSIGNMENT / "1_baseline.html").read_text()
    assert "check_log_mel_values" in html, "feedback shows the hidden check as a call"
    assert "_reference_log_mel" not in html and "melspectrogram(" not in html, "hidden check code leaked"
    summary = (out / "feedback" / "bad_checkpoints" / ASSIGNMENT / "summary.txt").read_text()
    assert "Test accuracy measured by the grader" in summary and "0 of 5 points" in summary


def test_a_lane_out_of_time_costs_only_its_notebooks(batch):
    """The time limit of a lane is derived from the reference's own grading time (timing.json)."""
    results, _ = batch
    r = results[STUCK_ID]
    limit = timing.load().autograde([STUCK])
    assert f"autograde of {STUCK}: nbgrader autograde took longer than {limit:.0f} s" in r.status, r.status
    assert limit < 300, "a stuck notebook costs minutes, not a quarter of an hour"
    baseline = {gid: pts for nb, gid, pts in grading.grade_cells() if nb == "1_baseline" and not gid.startswith("answer_")}
    assert {g: r.scores[g] for g in baseline} == baseline, "the notebook in the other lane keeps every point"
    assert not any(r.scores[g] for nb, g, _ in grading.grade_cells() if nb == STUCK and g not in ACCURACY_TESTS)


def test_every_lane_is_published_and_no_scratch_copy_is_left(batch):
    """The notebooks are autograded in parallel lanes; OUT holds every notebook's autograded copy and
    feedback page (feedback: pages only, no copy of the checkpoints), work/ only each result."""
    results, out = batch
    notebooks = {nb for nb, _, _ in grading.grade_cells()}
    feedback = out / "feedback" / "reference" / ASSIGNMENT
    assert {p.name for p in feedback.iterdir()} == {f"{nb}.html" for nb in notebooks} | {"summary.txt"}
    assert {p.stem for p in (out / "autograded" / "reference" / ASSIGNMENT).glob("*.ipynb")} == notebooks
    assert {p.stem for p in (out / "submitted" / "reference" / ASSIGNMENT).glob("*.ipynb")} == notebooks
    assert all([p.name for p in (out / "work" / s).iterdir()] == ["result.json"] for s in results)
    assert set(results["reference"].phases) == {"autograde", "accuracy", "feedback"}


def test_grade_command_errors_are_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "no such folder of submissions" in res.stderr


def test_calibrate_reuse_without_seed_folders_is_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "autograder", "calibrate", "--data", TEST_DATA, "--reuse",
                          "--parts", "part4_mlp", "--out", str(tmp_path / "cal")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "--reuse:" in res.stderr and "seed0" in res.stderr and "part3_augmented.pt is missing" in res.stderr
    assert not (tmp_path / "cal").exists(), "nothing is computed or written before the check"


def test_zip_of_submissions_is_unpacked(tmp_path):
    import zipfile
    _submission(tmp_path / "lms" / "export", "alice", solved=False)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in (tmp_path / "lms").rglob("*"):
            zf.write(p, p.relative_to(tmp_path / "lms"))
    found = grading.list_submissions(archive, tmp_path / "out")
    assert [s for s, _ in found] == ["alice"]
    assert grading.find_assignment_folder(found[0][1]).name == ASSIGNMENT


def test_points_are_linear_between_floor_and_pass():
    assert thresholds.points(0.9, 0.76, 0.44, 5) == 5
    assert thresholds.points(0.60, 0.76, 0.44, 5) == 2.5
    assert thresholds.points(0.44, 0.76, 0.44, 5) == 0
    entry = thresholds.from_reference([0.81, 0.875, 0.896])
    assert entry["pass"] == pytest.approx(0.76, abs=0.01) and 0.125 + 0.1 <= entry["floor"] < entry["pass"]


def test_a_submission_cannot_shadow_the_grader(batch):
    results, out = batch
    r = results["blank"]
    assert all(r.scores[t] == 0 for t in ALL_AUTO), r.scores
    assert "autograder/measure.py" in r.ignored and "sitecustomize.py" in r.ignored
    assert "autograder/measure.py" in (out / "feedback" / "blank" / ASSIGNMENT / "summary.txt").read_text()


def test_no_kernel_outlives_the_batch(batch):
    import psutil
    _, out = batch
    left = [" ".join(p.info["cmdline"] or [])[:120] for p in psutil.process_iter(["cwd", "cmdline"])
            if p.info["cwd"] and p.info["cwd"].startswith(str(out))]  # kernels run in the notebook's folder
    assert not left, f"processes left behind: {left}"


def test_out_is_an_nbgrader_course_and_a_rerun_resumes(batch, tmp_path):
    """formgrader/export work in OUT; grading again skips graded students and keeps manual grades."""
    results, out = batch
    assert (out / "autograded" / "reference" / ASSIGNMENT / "1_baseline.ipynb").is_file()
    assert (out / "source" / ASSIGNMENT / "1_baseline.ipynb").is_file() and (out / "nbgrader_config.py").is_file()
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:  # an instructor grades the written answer
        grade = gb.find_grade("answer_confusion", "1_baseline", ASSIGNMENT, "reference")
        grade.manual_score = 2.0
        gb.db.commit()
    export = subprocess.run([sys.executable, "-m", "nbgrader", "export", "--to", str(tmp_path / "export.csv")],
                            cwd=out, capture_output=True, text=True, timeout=120, env=nbgrader_env())
    assert export.returncode == 0, export.stderr[-300:]
    rows = {r["student_id"]: r for r in csv.DictReader(open(tmp_path / "export.csv"))}
    assert float(rows["reference"]["score"]) == sum(ALL_AUTO.values()) + 2
    # late submission: only the new student is graded, the others (and the manual grade) stay
    late = tmp_path / "late"  # refused at once (a symbolic link): the test is about who gets graded
    _submission(late, "late_student", solved=False)
    (late / "late_student" / ASSIGNMENT / "link.py").symlink_to("/etc/hostname")
    again = grading.grade(late, out, TEST_DATA, cell_timeout=20, accuracy_timeout=60, progress=False)
    assert {r.student for r in again} == set(results) | {"late_student"}
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        assert gb.find_grade("answer_confusion", "1_baseline", ASSIGNMENT, "reference").manual_score == 2.0
    assert "symbolic link" in next(r for r in again if r.student == "late_student").status
    with open(out / "grades.csv") as f:
        assert {row["student_id"] for row in csv.DictReader(f)} == set(results) | {"late_student"}
