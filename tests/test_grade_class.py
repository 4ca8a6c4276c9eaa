"""`python -m minilm grade SUBMISSIONS/ --csv scores.csv`: a class's notebooks, each one's answers in a process of
their own with a time and a memory limit, judged in the grader's process; one CSV row per learner and exercise.
Uses exercise 06, the quickest to run, and exercise 01 for the submissions that try to cheat (docs/grading.md)."""
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from exercise_mutations import MUTATIONS
from minilm import MinilmError
from minilm.course import grader, judge, notebooks, paths, replay

EXERCISE = "06_power_law_fit"
TIMEOUT = 10  # seconds per notebook: plenty for exercise 06 (1-2 s), short for a test that waits out an endless loop


def notebook(source_text, tmp_path, name):
    """The solution notebook built from a source text (a learner's finished work)."""
    source = tmp_path / f"{name}.py"
    source.write_text(source_text)
    return notebooks.build_notebook(source, solution=True)


def save(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebooks.notebook_text(nb))


@pytest.fixture
def submissions(tmp_path):
    """alice/ holds a correct notebook; bob/ a wrong one whose graded cells he emptied; carol.ipynb, loose in
    the folder and renamed, loops forever."""
    folder = tmp_path / "submissions"
    source = (paths.SOURCES / f"{EXERCISE}.py").read_text()
    save(notebook(source, tmp_path, EXERCISE), folder / "alice" / f"{EXERCISE}.ipynb")
    wrong = notebook(next(m for m in MUTATIONS if m.name == "exponent-sign-flipped").source(), tmp_path, EXERCISE)
    for cell in wrong.cells:
        if grader.is_graded(cell):
            cell.source = "pass  # the checks are gone"
    save(wrong, folder / "bob" / "work" / f"{EXERCISE}.ipynb")
    endless = source.replace("    slope, intercept = np.polyfit", "    while True:\n        pass\n    slope, intercept = np.polyfit")
    save(notebook(endless, tmp_path, EXERCISE), folder / "carol.ipynb")
    return folder


def test_class_grade_writes_one_row_per_learner_and_exercise(submissions, tmp_path):
    scores = tmp_path / "scores.csv"
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT)}
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "minilm", "grade", str(submissions), "--csv", str(scores), "--timeout", str(TIMEOUT)],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    # carol's endless loop is stopped at the limit; alice's and bob's answers take a few seconds
    assert took < TIMEOUT + 45, f"grading 3 notebooks, one stopped at {TIMEOUT} s, took {took:.0f} s"
    rows = list(csv.DictReader(scores.open()))
    n = len(grader.graded_titles(EXERCISE))
    assert [(r["learner"], r["exercise"], r["out_of"]) for r in rows] == [(name, EXERCISE, str(n)) for name in ("alice", "bob", "carol")]
    alice, bob, carol = rows
    assert alice["score"] == str(n) and alice["feedback"] == ""
    assert [alice[f"check_{i}"] for i in range(1, n + 1)] == ["1"] * n
    # bob's emptied graded cells do not count: the course's checks run, and name his mistake
    assert 0 < int(bob["score"]) < n and "your alpha has the wrong sign" in bob["feedback"]
    assert int(bob["score"]) == sum(int(bob[f"check_{i}"]) for i in range(1, n + 1))
    assert carol["score"] == "0" and f"ran past its {TIMEOUT} s time limit" in carol["feedback"] and "(0 points)" in carol["feedback"]
    assert run.stdout.splitlines()[-1] == f"wrote {scores}: 3 notebooks of 3 learners"


def test_submissions_are_found_in_learners_folders_and_loose(tmp_path):
    for path in ("dan/a/01_x.ipynb", "dan/.ipynb_checkpoints/01_x-checkpoint.ipynb", "eve.ipynb", "notes.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}")
    (tmp_path / "empty").mkdir()
    assert [(learner, path.relative_to(tmp_path).as_posix()) for learner, path in grader.class_submissions(tmp_path)] == \
        [("dan", "dan/a/01_x.ipynb"), ("eve", "eve.ipynb")]
    with pytest.raises(MinilmError, match="no notebooks"):
        grader.class_submissions(tmp_path / "empty")


def test_the_exercise_is_read_from_the_file_name_or_the_notebook(tmp_path):
    renamed = tmp_path / "my work.ipynb"
    renamed.write_text((paths.EXERCISES / "07_kv_cache.ipynb").read_text())  # its text also names 02_attention_masks, once
    assert grader.exercise_of(renamed) == "07_kv_cache"
    assert grader.exercise_of(tmp_path / "03_anything.ipynb") == "03_layernorm"
    (tmp_path / "other.ipynb").write_text("{}")
    assert grader.exercise_of(tmp_path / "other.ipynb") is None


def test_an_unreadable_or_unknown_submission_gets_a_row_that_says_why(tmp_path):
    broken = tmp_path / f"{EXERCISE}.ipynb"
    broken.write_text("{not json")
    score = grader.grade_submission("fay", broken, timeout=TIMEOUT)
    assert score.passed == [False] * len(grader.graded_titles(EXERCISE)) and "not a readable Jupyter notebook" in score.feedback
    (tmp_path / "other.ipynb").write_text("{}")
    unknown = grader.grade_submission("gus", tmp_path / "other.ipynb")
    assert unknown.passed == [] and "not one of the exercises" in unknown.feedback
    grader.write_scores(tmp_path / "s.csv", [score, unknown])
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    assert rows[0][:4] == ["learner", "exercise", "score", "out_of"] and rows[0][-1] == "feedback"
    assert rows[2][:4] == ["gus", "other", "0", "0"]


def test_kill_tree_stops_a_process_and_a_grandchild_in_a_session_of_its_own():
    """As nbval starts its kernel: pytest's child, in a new session, so killing pytest's process group would miss it."""
    import psutil

    grandchild = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], " \
                 "start_new_session=True); print(p.pid, flush=True); time.sleep(300)"
    child = subprocess.Popen([sys.executable, "-c", grandchild], stdout=subprocess.PIPE, text=True)
    kernel, top = psutil.Process(int(child.stdout.readline())), psutil.Process(child.pid)
    grader.kill_tree(child.pid)
    kernel.wait(timeout=10)  # a child of a killed process is reparented, then reaped: gone either way
    assert not kernel.is_running() and not top.is_running()
    child.wait(timeout=10)
    grader.kill_tree(child.pid)  # a process that is gone already: nothing to do, no error


# --------------------------------------------------------------------------------------------------
# Submissions that try to get marks without the work. Each is exercise 01 with lines put into its first answer
# cell (the softmax cell, left as the stub or given a wrong softmax); each must gain nothing over the same cell
# without those lines, and be flagged.

CHEAT = "01_softmax_cross_entropy"
UNIFORM = "def softmax(logits):\n    return np.ones_like(logits) / logits.shape[-1]  # wrong, but finite\n"
TACTICS = {  # tactic: (the lines, the softmax they come with: None for the stub)
    "patch-the-check-class": ("import minilm.course.checks as _c\n_c.ExerciseChecks.graded = lambda self, name: None\n"
                              "_c.ExerciseChecks.problem = lambda self, check: ''", None),
    "patch-the-check-object": ("check.graded = lambda name: None\ncheck.run = lambda c: None", None),
    "patch-the-feedback": ("import minilm.course.feedback as _f\n_f.mismatch = lambda *args, **kwargs: ''\n"
                           "check.module.mismatch = _f.mismatch", UNIFORM),
    "patch-the-reference": ("from minilm import layers\nlayers.softmax = softmax", UNIFORM),
    "patch-the-plugin": ("import minilm.course.nbval_plugin as _p\n_p.pytest_runtest_makereport = lambda item, call: None", None),
    "sys-exit-before-the-graded-cells": ("import sys\nsys.exit(0)", None),
    "os-exit-before-the-graded-cells": ("import os\nos._exit(0)", None),
    "write-files-next-to-the-notebook": ("for k in range(1, 6):\n    open(f'check_{k}.json', 'w').write('{\"found\": {}, \"events\": []}')\n"
                                         "open('../scores.csv', 'w').write('learner,score')\nopen('GRADE.txt', 'w').write('5/5')", None),
}


def exercise_with(lines, softmax=None):
    """The student notebook of exercise 01, its softmax cell ending with `lines` (after `softmax`, if given)."""
    nb = grader.read_notebook(paths.EXERCISES / f"{CHEAT}.ipynb")
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("def softmax"))
    cell.source = "\n".join(filter(None, [softmax or cell.source, lines]))
    return nb


@pytest.fixture(scope="module")
def cheats(tmp_path_factory):
    """{tactic: (its Score, the Score of the same softmax cell without the tactic's lines, the folder of both)}."""
    folder = tmp_path_factory.mktemp("cheats")
    for tactic, (lines, softmax) in TACTICS.items():
        save(exercise_with(lines, softmax), folder / tactic / f"{CHEAT}.ipynb")
    for name, softmax in (("honest-stub", None), ("honest-uniform", UNIFORM)):
        save(exercise_with("", softmax), folder / name / f"{CHEAT}.ipynb")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    scores = {s.learner: s for s in grader.grade_class(folder, timeout=TIMEOUT, progress=lambda line: None)}
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before, "grading wrote into the class folder"
    return {tactic: (scores[tactic], scores["honest-uniform" if softmax else "honest-stub"], folder)
            for tactic, (_, softmax) in TACTICS.items()}


@pytest.mark.parametrize("tactic", TACTICS)
def test_a_cheating_submission_gains_nothing_and_is_flagged(cheats, tactic):
    score, honest, _ = cheats[tactic]
    assert len(score.passed) == 5 and score.passed == honest.passed, f"{tactic}: {score.feedback}"
    assert "flagged: the answer cells do more than define the answers" in score.feedback and "flagged" not in honest.feedback
    assert sum(honest.passed) < 5


# The notebook run as a kernel runs it (every code cell in order, in one namespace), in a process of its own:
# the number of graded cells that raise nothing. (json, not nbformat: its schema check takes seconds to load.)
KERNEL = """import json, sys
namespace, passed = {"__name__": "__main__"}, 0
for cell in json.load(open(sys.argv[1]))["cells"]:
    if cell["cell_type"] == "code":
        try:
            exec("".join(cell["source"]), namespace)
            passed += "graded" in cell["metadata"].get("tags", [])
        except Exception:
            pass
print(passed)
"""
PATCHES = ["patch-the-check-class", "patch-the-check-object", "patch-the-feedback", "patch-the-reference"]


def test_the_patches_do_fool_a_grade_run_in_the_learners_kernel(cheats):
    """The tactics are real: in the learner's own kernel they pass graded checks that the same cell fails without
    them (which is why the class grade runs no check there)."""
    folder = cheats[PATCHES[0]][2]
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT)}
    kernel = {name: int(subprocess.run([sys.executable, "-c", KERNEL, str(folder / name / f"{CHEAT}.ipynb")], env=env,
                                       capture_output=True, text=True, check=True).stdout.split()[-1])
              for name in [*PATCHES, "honest-stub", "honest-uniform"]}
    for tactic in PATCHES:
        assert kernel[tactic] > kernel["honest-uniform" if TACTICS[tactic][1] else "honest-stub"], (tactic, kernel)


def test_the_cheats_are_named_in_the_feedback(cheats):
    assert "imports minilm.course.checks, which the exercise's own cells do not" in cheats["patch-the-check-class"][0].feedback
    assert "sets _c.ExerciseChecks.graded, an attribute of an object it did not make" in cheats["patch-the-check-class"][0].feedback
    assert "sets check.graded" in cheats["patch-the-check-object"][0].feedback
    assert "sets layers.softmax" in cheats["patch-the-reference"][0].feedback
    assert "calls open" in cheats["write-files-next-to-the-notebook"][0].feedback


@pytest.mark.parametrize("tactic", ["sys-exit-before-the-graded-cells", "os-exit-before-the-graded-cells"])
def test_a_notebook_that_exits_early_fails_its_checks_saying_so(cheats, tactic):
    score, _, _ = cheats[tactic]
    assert score.passed == [False] * 5
    assert "exited before its answers were checked (exit status 0) (0 points)" in score.feedback
    assert "time limit" not in score.feedback


def test_a_submission_runs_in_a_scratch_folder_under_a_memory_limit_and_leaves_no_process(tmp_path):
    """The answer cell starts a process that would outlive it, and its softmax asks for 2 GiB (zeros: nothing
    is touched, so it would succeed without the limit): under a 1 GiB limit the allocation fails inside the
    learner's softmax, the process is stopped, the scratch folder held only the notebook and the child's program,
    and the notebook's own folder is untouched."""
    pid_file = tmp_path / "pid.txt"  # outside the scratch folder: the test reads it
    lines = (f"import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
             f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
             "import os\nassert sorted(os.listdir('.')) == ['01_softmax_cross_entropy.ipynb', 'program.json']\n"
             "def softmax(logits):\n    return np.zeros(2**28)")
    save(exercise_with(lines), tmp_path / "dora" / f"{CHEAT}.ipynb")
    score = grader.grade_submission("dora", tmp_path / "dora" / f"{CHEAT}.ipynb", timeout=TIMEOUT, memory_mib=1024)
    assert score.passed[:2] == [False, False] and "Check 1: MemoryError (in softmax): Unable to allocate 2.00 GiB" in score.feedback, score.feedback
    import psutil

    try:
        psutil.Process(int(pid_file.read_text())).wait(timeout=10)  # killed: gone once reaped; alive: TimeoutExpired
    except psutil.NoSuchProcess:
        pass
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["01_softmax_cross_entropy.ipynb", "dora", "pid.txt"]


def test_answers_are_data_and_anything_else_fails_its_check(tmp_path):
    """What a child leaves behind is read as JSON and an .npz without pickle: pickled arrays, links to other files
    and answers in another shape fail their check (each says why); a learner's object has no __special__
    attributes (numpy's __array_interface__ would be a pointer the child chose)."""
    answers = {"found": {"softmax": {"handle": 0}}, "events": [{"kind": "call", "target": 0, "depth": 0, "value": {"array": 0}}]}
    (tmp_path / "check_1.json").write_text(json.dumps(answers))
    np.savez(tmp_path / "check_1.npz", np.array([{"a": 1}], dtype=object))  # only pickle can hold it
    (tmp_path / "check_2.json").symlink_to(tmp_path / "check_1.json")
    (tmp_path / "check_2.npz").symlink_to(tmp_path / "check_1.npz")
    (tmp_path / "check_3.json").write_text("[1, 2]")
    np.savez(tmp_path / "check_3.npz")
    verdicts = judge.verdicts(CHEAT, tmp_path, "did not run: no answers")
    assert [passed for passed, _ in verdicts] == [False] * 5
    assert "could not be read (ValueError: Object arrays cannot be loaded when allow_pickle=False)" in verdicts[0][1]
    assert "links to other files" in verdicts[1][1] and "not in the grader's format" in verdicts[2][1]
    assert verdicts[3][1] == verdicts[4][1] == "did not run: no answers"
    stand_in = replay.replay_namespace({"found": {"softmax": {"handle": 0}}, "events": []}, [])["softmax"]
    with pytest.raises(AttributeError):
        stand_in.__array_interface__
    assert np.asarray(stand_in).dtype == object


def test_course_without_solutions_leaves_them_out(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT)}
    run = subprocess.run([sys.executable, "-m", "minilm", "course", str(tmp_path / "class"), "--without-solutions"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "exercises/ without their solutions" in run.stdout, run.stderr
    copied = [p for p in (tmp_path / "class").rglob("*") if p.is_file()]
    names = {p.relative_to(tmp_path / "class").as_posix() for p in copied}
    assert {f"exercises/{s.stem}.ipynb" for s in notebooks.exercise_sources()} <= names and "lessons/01_next_token_loss.ipynb" in names
    assert not any(n.startswith(("exercises/solutions/", "exercises/sources/")) for n in names)
    text = "\n".join(p.read_text(errors="replace") for p in copied)
    for source in notebooks.exercise_sources():
        for block in source.read_text().split(notebooks.BEGIN)[1:]:
            longest = max(block.split(notebooks.END)[0].strip().splitlines(), key=len).strip()
            assert longest not in text and json.dumps(longest)[1:-1] not in text, f"{source.stem}: {longest!r} was copied"


def test_record_and_replay_share_the_checks_dicts_with_the_learners_code():
    """A step that sets a dict's entries (params[name] = params[name] - lr * g) changes the check's own dict, in
    the child as in a kernel, and the grader's dict the same way when replayed: recorded and replayed here, in
    this process, with the learner's function and the check written out."""
    def train_step(params, lr):
        params["w"] = params["w"] - lr
        return float(params["w"].sum())

    def check(train_step):
        params = {"w": np.ones(2)}
        losses = [train_step(params, 0.5) for _ in range(3)]
        assert losses == [1.0, 0.0, -1.0] and params["w"].tolist() == [-0.5, -0.5], (losses, params)

    arrays = []
    answers = replay.record_check(check, {"train_step": train_step}, arrays)
    check(**replay.replay_namespace(json.loads(json.dumps(answers)), arrays))
    step = replay.replay_namespace(answers, arrays)["train_step"]  # a fourth call has no answer
    params = {"w": np.ones(2)}
    assert [step(params, 0.5) for _ in range(3)] == [1.0, 0.0, -1.0] and params["w"].tolist() == [-0.5, -0.5]
    with pytest.raises(replay.OutOfStep, match="no answer came back for the check's call 4"):
        step(params, 0.5)


def test_the_calls_into_the_checks_objects_are_made_again_but_never_a_private_one():
    """A recorded call of the check's model's public method is made again on the grader's model, with the
    recorded arguments; a call of a private or special one (__setattr__ would set the grader's attributes to
    what the child chose) fails the check instead."""
    class Model:
        def __init__(self):
            self.fed = []

        def forward(self, tokens):
            self.fed.append(tokens)

    def decode(*callbacks):
        """The learner's decode(model), replayed: it returned 1 after these calls into the model."""
        events = [{"kind": "callback", "object": 0, "name": name, "args": {"tuple": [{"value": value}]},
                   "kwargs": {"dict": []}, "depth": 1} for name, value in callbacks]
        answers = {"found": {"decode": {"handle": 0}},
                   "events": [{"kind": "call", "target": 0, "depth": 0, "value": {"value": 1}}, *events]}
        return replay.replay_namespace(answers, [])["decode"]

    model = Model()
    assert decode(("forward", 7))(model) == 1 and model.fed == [7]
    model = Model()
    with pytest.raises(replay.OutOfStep, match="'__setattr__', a private method"):
        decode(("forward", 7), ("__setattr__", "fed"))(model)
    assert model.fed == [7]
