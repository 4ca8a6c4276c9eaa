"""The nbval plugin: loaded into the grader's pytest run with `-p minilm.course.nbval_plugin`, it writes one
JSON line per notebook cell: which notebook and cell, whether it passed, and the error's type and message (for a
failed `assert`, the message its author wrote).
"""
import json
from pathlib import Path

from .feedback import error_line, innermost_function


def pytest_addoption(parser):
    parser.addoption("--minilm-report", default=None,
                     help="minilm grade: write one JSON line per notebook cell to this file")


def pytest_runtest_makereport(item, call):
    """Record each notebook cell's outcome; returns None, so pytest still makes its usual report."""
    path = item.config.getoption("minilm_report")
    if path is None or call.when != "call" or not hasattr(item, "cell"):
        return None
    message = ""
    if call.excinfo is not None:
        errors = [out for out in (item.test_outputs or []) if out.get("output_type") == "error"]
        if errors:
            err = errors[-1]
            message = error_line(err["ename"], err["evalue"], innermost_function("\n".join(err["traceback"])))
        else:  # nbval itself failed the cell (a timeout, a dead kernel)
            message = " ".join(str(call.excinfo.value).split())
    row = {"notebook": str(Path(item.path).resolve()), "cell": item.cell_num,
           "passed": call.excinfo is None, "message": message}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    return None
