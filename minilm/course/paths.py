"""Where the course lives: the lessons, their committed results and the exercises. Only the course (and the
command line) names these folders; the engine and the studies take paths as arguments."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: minilm/course/paths.py -> the repository
LESSONS = ROOT / "lessons"
RESULTS = LESSONS / "results"  # what the studies wrote for the lessons (committed)
EXERCISES = ROOT / "exercises"
SOURCES = EXERCISES / "sources"
CHECKS = EXERCISES / "checks"
