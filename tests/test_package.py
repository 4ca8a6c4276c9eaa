"""The package carries its course (issue 27). A wheel built from this checkout, installed into a folder of its
own and imported from there (never from the checkout), copies the lessons and exercises into a folder of the
learner's with `python -m minilm course DIR`, and grades them there. A checkout keeps using its own folders."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from minilm.course import grader, paths

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = "06_power_law_fit"  # the quickest exercise to grade (a few seconds)
BUILT_FROM = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "minilm", "lessons", "exercises")
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


def builds_without_the_network():
    """pip wheel --no-build-isolation builds with this environment's setuptools: 77 or later reads the license
    metadata (PEP 639) and has bdist_wheel built in."""
    import setuptools

    return tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit()) >= (77, 0)


def run(*args, cwd, env=None, timeout=300):
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the wheel, the folder it is installed into, an environment that imports minilm from that folder only)."""
    if not builds_without_the_network():
        pytest.skip("building the wheel offline needs setuptools>=77 here (pip install -U setuptools; the test "
                    "extra has it)")
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"  # a copy, so the build's build/ and egg-info stay out of the checkout
    source.mkdir()
    for name in BUILT_FROM:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=LEFT_OUT)
        else:
            shutil.copy2(ROOT / name, source / name)
    built = run("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "./source",
                "-w", tmp / "wheels", cwd=tmp)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel, = (tmp / "wheels").glob("minilm_course-*.whl")
    target = tmp / "installed"
    done = run("-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", target, wheel, cwd=tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target), "MPLBACKEND": "Agg"}  # not the checkout (conftest puts it there)
    return wheel, target, env


def test_a_checkout_uses_its_own_folders():
    assert paths.IN_CHECKOUT and paths.ROOT == ROOT and paths.LESSONS == ROOT / "lessons"
    assert paths.PARAGRAPH.read_text(encoding="utf-8").startswith("The lighthouse")


def test_the_wheel_holds_the_course_and_the_license(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    lessons = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "lessons").rglob("*") if p.is_file())
    exercises = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "exercises").rglob("*") if p.is_file())
    missing = [name for name in lessons + exercises if f"minilm/course/_data/{name}" not in names]
    assert missing == [] and "minilm/course/paragraph.txt" in names
    assert any(name.endswith(".dist-info/LICENSE") or name.endswith(".dist-info/licenses/LICENSE") for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: minilm-course\n" in metadata and "License-Expression: MIT\n" in metadata
    assert not any(".ipynb_checkpoints" in name or "__pycache__" in name for name in names)


def test_course_copies_the_lessons_and_exercises_out_of_the_installed_wheel(installed, tmp_path):
    _, target, env = installed
    where = run("-c", "import minilm, minilm.course.paths as p; print(minilm.__file__, p.IN_CHECKOUT, p.ROOT)",
                cwd=tmp_path, env=env)
    module, in_checkout, root = where.stdout.split()
    assert Path(module).is_relative_to(target) and in_checkout == "False", where.stdout + where.stderr
    assert Path(root) == target / "minilm" / "course" / "_data"

    made = run("-m", "minilm", "course", "my course", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    assert "cd 'my course' && jupyter lab" in made.stdout
    course = tmp_path / "my course"
    for folder in ("lessons", "lessons/results", "exercises", "exercises/solutions"):
        here = sorted(p.name for p in (ROOT / folder).iterdir() if p.is_file())
        there = sorted(p.name for p in (course / folder).iterdir() if p.is_file())
        assert there == here and here, folder
    lesson = "lessons/01_next_token_loss.ipynb"
    assert (course / lesson).read_bytes() == (ROOT / lesson).read_bytes()
    assert os.access(course / lesson, os.W_OK)

    again = run("-m", "minilm", "course", "my course", cwd=tmp_path, env=env)  # never over a learner's files
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "is not empty" in again.stderr
    (tmp_path / "a file").write_text("")
    unwritable = run("-m", "minilm", "course", "a file/course", cwd=tmp_path, env=env)
    assert unwritable.returncode == 1 and unwritable.stderr.count("\n") == 1, unwritable.stderr
    assert "cannot write the course" in unwritable.stderr and "Traceback" not in unwritable.stderr

    # grading in the learner's folder: the solution passes every graded check, the untouched exercise none
    n = sum(grader.is_graded(cell) for cell in grader.code_cells(ROOT / "exercises" / f"{EXERCISE}.ipynb"))
    solved = run("-m", "minilm", "grade", f"exercises/solutions/{EXERCISE}.ipynb", cwd=course, env=env)
    assert solved.returncode == 0 and solved.stdout.splitlines()[-1] == f"GRADE: {n}/{n} graded checks passed", \
        solved.stdout + solved.stderr
    untouched = run("-m", "minilm", "grade", f"exercises/{EXERCISE}.ipynb", cwd=course, env=env)
    assert untouched.returncode == 1 and untouched.stdout.splitlines()[-1] == f"GRADE: 0/{n} graded checks passed", \
        untouched.stdout + untouched.stderr


def test_course_is_one_line_for_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run("-m", "minilm", "course", tmp_path, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1 and result.stderr.strip() == \
        f"minilm: error: {tmp_path} is not empty: give a new or empty folder, so no file of yours is overwritten"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert "usage: python -m minilm course" in run("-m", "minilm", "course", "--help", cwd=ROOT).stdout


def test_an_installed_minilm_trains_a_kept_preset_into_runs_and_reads_the_course_copy(monkeypatch):
    """The course inside an installed package is read (reports, baselines), never written: a sweep run there
    writes its results to runs/ (`--out` chooses another file)."""
    from minilm.__main__ import results_path
    from minilm.studies import all_studies

    study = next(s for s in all_studies() if s.committed)
    preset = sorted(study.committed)[0]
    assert results_path(study, preset, writing=True) == str(paths.RESULTS / study.results_file(preset))
    monkeypatch.setattr(paths, "IN_CHECKOUT", False)
    assert results_path(study, preset, writing=True) == os.path.join("runs", study.results_file(preset))
    assert results_path(study, preset) == str(paths.RESULTS / study.results_file(preset))


FAST = ["tests/test_layers.py", "tests/test_imports.py", "tests/test_masks.py", "tests/test_lora.py",
        "tests/test_reference_layers.py"]


def test_the_unpacked_sdist_runs_the_fast_tests(tmp_path):
    """The sdist holds the tests with what they need (conftest.py, tests/helpers.py, the fixtures): unpacked
    anywhere, it runs a selection of the default run's fast tests against its own copy of minilm."""
    import tarfile

    source = tmp_path / "source"
    source.mkdir()
    for name in BUILT_FROM + ("conftest.py", "tests", "docs", "benchmarks"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=LEFT_OUT)
        else:
            shutil.copy2(ROOT / name, source / name)
    built = run("-c", "from setuptools import build_meta; print(build_meta.build_sdist('dist'))", cwd=source)
    assert built.returncode == 0, built.stderr[-2000:]
    sdist = source / "dist" / built.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    unpacked, = (tmp_path / "unpacked").iterdir()
    for needed in ("conftest.py", "tests/helpers.py", "tests/fixtures/pretrained/tiny_llama.gguf", "LICENSE"):
        assert (unpacked / needed).is_file(), f"the sdist lacks {needed}"
    env = {**os.environ, "PYTHONPATH": str(unpacked), "MPLBACKEND": "Agg"}
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *FAST, cwd=unpacked, env=env, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    imported = run("-c", "import minilm; print(minilm.__file__)", cwd=unpacked, env=env).stdout.strip()
    assert "passed" in tests.stdout and imported.startswith(str(unpacked))
