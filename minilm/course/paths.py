"""Where the course lives: the lessons, their committed results and the exercises. Only the course (and the
command line) names these folders; the engine and the studies take paths as arguments.

Imported from a checkout, the course is the checkout's own folders (edit a lesson there and it is the one that
runs). Installed from a wheel, it is the copy the wheel carries inside the package (setup.py puts it in
minilm/course/_data/), found through importlib.resources; `python -m minilm course DIR` copies it into a
folder of the learner's own (copy_course).
"""
import os
from importlib import resources
from pathlib import Path

from ..errors import MinilmError

HOME = Path(__file__).resolve().parents[2]  # the folder minilm is imported from: a checkout, site-packages, ...
IN_CHECKOUT = (HOME / "pyproject.toml").is_file() and (HOME / "lessons").is_dir() and (HOME / "exercises").is_dir()
PACKAGED = Path(str(resources.files(__package__) / "_data"))  # the course a wheel carries (a wheel installs unzipped)
ROOT = HOME if IN_CHECKOUT else PACKAGED
LESSONS = ROOT / "lessons"
RESULTS = LESSONS / "results"  # what the studies wrote for the lessons (committed)
EXERCISES = ROOT / "exercises"
SOURCES = EXERCISES / "sources"
CHECKS = EXERCISES / "checks"
PARAGRAPH = resources.files(__package__) / "paragraph.txt"  # lesson 06's new paragraph (PARAGRAPH.read_text())

COURSE = ("lessons", "exercises")  # what a learner's copy holds
LEFT_OUT = (".ipynb_checkpoints", "__pycache__")
ANSWERS = (Path("exercises") / "solutions", Path("exercises") / "sources")  # the sources hold the solutions too


def copy_course(folder, solutions=True):
    """Copy the lessons (with their results) and the exercises (with their solutions, unless solutions=False)
    into `folder`, which must be new or empty. Returns the number of files copied. The copies are the
    learner's: plain files, writable."""
    folder = Path(folder)
    if not LESSONS.is_dir() or not EXERCISES.is_dir():
        raise MinilmError(f"this minilm has no course to copy ({ROOT} lacks lessons/ or exercises/): reinstall it "
                          f"from a wheel or a checkout")
    if folder.exists() and not folder.is_dir():
        raise MinilmError(f"{folder} is a file: give a new or empty folder for the course")
    if folder.is_dir() and any(folder.iterdir()):
        raise MinilmError(f"{folder} is not empty: give a new or empty folder, so no file of yours is overwritten")
    copied = 0
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in COURSE:
            for top, dirs, files in os.walk(ROOT / name):
                here = Path(top).relative_to(ROOT)
                dirs[:] = sorted(d for d in dirs if d not in LEFT_OUT and (solutions or here / d not in ANSWERS))
                target = folder / here
                target.mkdir(exist_ok=True)
                for file in sorted(files):
                    (target / file).write_bytes((Path(top) / file).read_bytes())  # not the install's permissions
                    copied += 1
    except OSError as e:
        raise MinilmError(f"cannot write the course to {folder}: {e.strerror or e} (choose a folder you can write "
                          f"to)") from None
    return copied
