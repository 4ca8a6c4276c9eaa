"""The checks, run in the notebook. Each exercise's checks are functions in `exercises/checks/NN_topic.py`,
grouped by the part of the exercise they test. A notebook binds them once,
`check = ExerciseChecks("NN_topic", globals())`; `check("softmax")` after a part prints each of its checks'
result, and a graded cell is `check.graded("softmax_rows")`, which raises the same message. One function, two
ways to run it in the learner's kernel; the class grade runs the same function a third way, on what the
learner's code gave back in a process of its own (minilm/course/replay.py).
"""
import importlib.util
import inspect
import traceback
from pathlib import Path

from ..errors import MinilmError
from .feedback import error_line
from .paths import CHECKS


def load_checks(exercise, folder=CHECKS):
    """The module of an exercise's checks, exercises/checks/NN_topic.py, loaded afresh (edits take effect)."""
    path = Path(folder) / f"{exercise}.py"
    if not path.exists():
        raise MinilmError(f"no checks for exercise {exercise!r}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"exercise_checks_{exercise}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ExerciseChecks:
    """An exercise's checks, bound to a notebook's namespace (its globals()).

    Each check is a function whose parameters are named after the learner's functions it tests
    (`def softmax_rows(softmax)`); the module groups them by part in PARTS, in the order of the graded cells."""

    def __init__(self, exercise, namespace):
        self.module = load_checks(exercise)
        self.namespace = namespace
        self.checks = [check for part in self.module.PARTS.values() for check in part]

    def title(self, check):
        """'Check 2: softmax stays finite on large logits', as the graded cell's first line reads."""
        return f"Check {self.checks.index(check) + 1}: {inspect.getdoc(check).splitlines()[0]}"

    def run(self, check):
        """Call a check with the learner's functions it names; a failed check raises AssertionError."""
        names = list(inspect.signature(check).parameters)
        missing = [name for name in names if name not in self.namespace]
        if missing:
            raise AssertionError(f"{', '.join(missing)} is not defined yet: run the cell that defines it first")
        check(*(self.namespace[name] for name in names))

    def graded(self, name):
        """A graded cell's body: run one check; nbval records its failure and message."""
        self.run(getattr(self.module, name))

    def problem(self, check):
        """'' if the check passes, else the line the grader would print for it."""
        try:
            self.run(check)
        except Exception as e:  # the learner's code may raise anything: report it, as the grader does
            frames = traceback.extract_tb(e.__traceback__)
            where = getattr(e, "where", None) or (frames[-1].name if frames else None)  # replayed: the child's
            return error_line(type(e).__name__, e, where)
        return ""

    def __call__(self, part=None):
        """Run the checks of one part (every check if None) and print each one's result; never raises."""
        if part is not None and part not in self.module.PARTS:
            raise MinilmError(f"no part named {part!r}: the parts are {', '.join(self.module.PARTS)}")
        for check in self.checks if part is None else self.module.PARTS[part]:
            problem = self.problem(check)
            print(f"FAIL {self.title(check)}\n     {problem}" if problem else f"pass {self.title(check)}")
