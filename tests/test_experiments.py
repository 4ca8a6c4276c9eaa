"""minilm.studies.runner: what a study is, one results store (resumable, atomic, one writer) and one way to run points
(in process, local processes, a Dask cluster), where a lost worker loses only its point."""
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from minilm.studies import runner, scaling
from minilm.errors import MinilmError
from tests.helpers import square, wait_forever

CONFIG = {"what": "squares", "n": 8}


def points(n=8, kill_marker=None):
    return [(f"x{x}", (x, kill_marker)) for x in range(n)]


def run(path, pts, jobs=1, scheduler=None, retries=3):
    store = runner.ResultsStore(str(path), "squares", "test", CONFIG)
    with runner.make_executor(jobs, scheduler) as executor:
        return runner.run_points(store, pts, square, executor, progress=False, retries=retries)


def assert_every_point_once(path, n=8):
    """The file on disk (not the returned dict) holds each point exactly once, complete."""
    saved = json.load(open(path))
    assert sorted(saved["points"]) == sorted(f"x{x}" for x in range(n))
    assert all(r["square"] == r["x"] ** 2 for r in saved["points"].values())
    assert not os.path.exists(f"{path}.tmp")
    return saved


def test_a_stopped_sweep_resumes_without_redoing_finished_points(tmp_path):
    path = tmp_path / "r.json"
    first = run(path, points()[:3])  # as if stopped after three points
    kept = {k: dict(v) for k, v in first["points"].items()}
    done = run(path, points())
    assert done["points"]["x0"] == kept["x0"]  # the same record: not trained again
    saved = assert_every_point_once(path)
    assert saved["sweep"] == "squares" and saved["config"] == CONFIG and saved["executor"] == "in process"


def test_every_record_says_which_code_and_machine_made_it(tmp_path):
    saved = run(tmp_path / "r.json", points(2))
    for record in saved["points"].values():
        assert record["code_version"] and record["code_version"] == runner.code_version()
        assert {"host", "cpu", "cores", "blas", "numpy"} <= set(record["machine"])


def test_a_record_names_the_code_as_it_was_when_its_point_started(monkeypatch):
    tree = {"version": "before"}
    monkeypatch.setattr(runner, "code_version", lambda: tree["version"])

    def edits_the_tree_while_it_trains(point):
        tree["version"] = "after"  # as if someone committed during an hour-long point
        return {"x": point}

    assert runner.measured(edits_the_tree_while_it_trains, 3)["code_version"] == "before"


def test_a_file_of_another_config_or_sweep_is_refused_in_one_line(tmp_path):
    path = tmp_path / "r.json"
    run(path, points(1))
    with pytest.raises(MinilmError, match="different configuration"):
        runner.ResultsStore(str(path), "squares", "test", {**CONFIG, "n": 9})
    with pytest.raises(MinilmError, match="holds a 'squares' sweep"):
        runner.load_results(str(path), "glib")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MinilmError, match="not a results file"):
        runner.load_results(str(tmp_path / "bad.json"))
    with pytest.raises(MinilmError, match="python -m minilm glib"):
        runner.load_results(str(tmp_path / "missing.json"), "glib")


def test_bad_executor_flags_are_one_line():
    with pytest.raises(MinilmError, match="--jobs must be 1 or more"):
        with runner.make_executor(0):
            pass
    with pytest.raises(MinilmError, match="leave them out with --device cuda"):
        with runner.make_executor(2, device="cuda"):
            pass


def test_local_processes_lose_only_the_killed_workers_point(tmp_path):
    """A worker process killed mid-sweep breaks Python's process pool for good; the sweep starts a new
    pool, submits the lost points again, and the file ends with every point exactly once."""
    marker = tmp_path / "killed"
    saved = run(tmp_path / "r.json", points(kill_marker=str(marker)), jobs=2)
    assert marker.exists()  # a worker really died
    assert_every_point_once(tmp_path / "r.json")
    assert len({r["pid"] for r in saved["points"].values()}) >= 2


def test_workers_exit_when_the_sweep_is_killed(tmp_path):
    """Killed outright (no Ctrl-C, no clean-up), a sweep leaves no worker training for nobody."""
    pid_file = tmp_path / "worker.pid"
    sweep = subprocess.Popen([sys.executable, "-c", f"""
import os, time
from minilm.studies.runner import WorkerProcesses
from tests.helpers import wait_forever
executor = WorkerProcesses(1)
executor.submit(wait_forever, {str(pid_file)!r})
while not os.path.exists({str(pid_file)!r}):
    time.sleep(0.1)
time.sleep(0.5)
os.kill(os.getpid(), 9)
"""], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sweep.wait(timeout=120)
    worker = int(pid_file.read_text())
    deadline = time.time() + 15
    while time.time() < deadline and alive(worker):
        time.sleep(0.2)
    assert not alive(worker), "the worker outlived its sweep"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    if not os.path.exists(f"/proc/{pid}/stat"):
        return True  # no /proc (macOS): init reaps an orphan at once, so a live pid is a live process
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped) counts as gone
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_sweep_that_keeps_losing_workers_stops_in_one_line(tmp_path):
    # retries=0: the first loss is final (a broken pool fails every point it was running, so the line
    # names one of those, not necessarily the killer)
    with pytest.raises(MinilmError, match=r"gave up on point x\d+: its worker was lost 1 time"):
        run(tmp_path / "r.json", points(kill_marker=str(tmp_path / "killed")), jobs=2, retries=0)
    assert "x3" not in json.load(open(tmp_path / "r.json"))["points"]  # never a half-made point


distributed = pytest.importorskip("distributed", reason="the Dask tests need the cluster extra")


def test_a_dask_cluster_survives_a_killed_worker(tmp_path):
    marker = tmp_path / "killed"
    saved = run(tmp_path / "r.json", points(kill_marker=str(marker)), jobs=2, scheduler="local")
    assert marker.exists()
    assert_every_point_once(tmp_path / "r.json")
    assert saved["executor"] == "Dask cluster local"


def test_the_ci_sweep_on_a_dask_cluster_equals_the_in_process_sweep(tmp_path):
    """The scaling sweep's CI preset, once in this process and once on a LocalCluster of two worker
    processes. Every point runs with one BLAS thread wherever it runs, and here both run on this machine's
    BLAS kernels, so the arithmetic is the same: we ask for equality to 1e-9 (relative), which any
    difference in how a matrix product is cut into threads would break after 100+ training steps."""
    config = scaling.preset("ci")
    results = {}
    for name, scheduler in (("in process", None), ("dask", "local")):
        store = runner.ResultsStore(str(tmp_path / f"{name}.json"), "scaling", "ci", asdict(config))
        with runner.make_executor(2 if scheduler else 1, scheduler) as executor:
            results[name] = runner.run_points(store, scaling.sweep_points(config), scaling.measure, executor, progress=False)
    here, there = results["in process"]["points"], results["dask"]["points"]
    assert sorted(here) == sorted(there) == sorted(run.key for run in scaling.plan(config))
    for key in here:
        assert there[key]["val_loss"] == pytest.approx(here[key]["val_loss"], rel=1e-9, abs=0), key
        for task, scores in here[key]["tasks"].items():
            assert there[key]["tasks"][task] == pytest.approx(scores, rel=1e-9, abs=1e-12), (key, task)


# ---- a study is one declaration: the command line makes its command

SQUARES = runner.Study(name="squares", help="square numbers", description="Square a few numbers.",
                       presets={"few": 3, "more": 5}, default="few", preset={"few": 3, "more": 5}.get,
                       sweep=lambda n, device: points(n), record=lambda n: {"n": n}, measure=square,
                       report=lambda results, *baseline: f"{len(results['points'])} squares, {len(baseline)} baseline")


def squares_cli(*argv):
    from minilm.__main__ import Parser, add_study_command

    parser = Parser(prog="python -m minilm")
    add_study_command(parser.add_subparsers(parser_class=Parser), SQUARES)
    args = parser.parse_args(["squares", *argv])
    return args.run(args)


def test_a_new_study_is_one_declaration_and_gets_the_command_every_study_has(tmp_path, capsys):
    out = tmp_path / "squares_few.json"
    squares_cli("--out", str(out), "--quiet")
    assert capsys.readouterr().out.strip().endswith("3 squares, 0 baseline")
    assert sorted(r["square"] for r in runner.load_results(out, "squares")["points"].values()) == [0, 1, 4]
    squares_cli("--out", str(out), "--report")
    assert capsys.readouterr().out.strip() == "3 squares, 0 baseline"
    with pytest.raises(MinilmError, match="different configuration"):
        squares_cli("--out", str(out), "--preset", "more", "--quiet")
    with pytest.raises(SystemExit):
        squares_cli("--preset", "many")
    assert SQUARES.results_file("few") == "squares_few.json"


def test_every_study_has_a_command_and_names_its_results_by_study_and_preset():
    from minilm.__main__ import build_parser, results_path
    from minilm.studies import all_studies

    commands = build_parser()._subparsers._group_actions[0].choices
    for study in all_studies():
        assert study.name in commands and study.default in study.presets
        assert set(study.committed) <= set(study.presets) and set(study.baselines) <= set(study.presets)
        for preset in study.presets:
            folder = "results" if preset in study.committed else "runs"
            assert results_path(study, preset).endswith(os.path.join(folder, f"{study.name}_{preset}.json"))
