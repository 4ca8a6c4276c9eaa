"""The child process of the class grade: `python -m minilm.course.answers` in a submission's scratch folder.

It runs the learner's answer cells (program.json, written there by minilm/course/judge.py), then each of the
exercise's checks on the functions they define, recording what the learner's code gives back
(minilm/course/replay.py), and saves check K's answers as check_K.json and check_K.npz in the folder. Nothing
it prints or decides is trusted: the grader reads only those answers, as data, and judges them itself.
"""
import json
import sys
import traceback
from pathlib import Path

from . import replay
from .checks import load_checks


def main(folder="."):
    program = json.loads((Path(folder) / "program.json").read_text())
    module = load_checks(program["exercise"])
    namespace = {"__name__": "__main__"}
    for n, source in program["cells"]:
        try:
            exec(compile(source, f"<code cell {n}>", "exec"), namespace)
        except Exception:  # as in a kernel: the cell's names stay undefined, and the next cell runs
            traceback.print_exc()
    for k, check in enumerate((c for part in module.PARTS.values() for c in part), 1):
        arrays = []
        replay.save(folder, k, replay.record_check(check, namespace, arrays), arrays)


if __name__ == "__main__":
    sys.exit(main())
