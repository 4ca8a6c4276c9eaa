"""The studies' runner: what a study is, one results store, one way to run the points of a sweep, and one
way to train a point's model (train_sweep_point).

Every study in the course (lesson 02's architectures, lesson 03's scaling sweep, lesson 04's glib sweep,
lesson 05's structure ladder) declares itself as a `Study` and is a list of *points*, each a small
description of one training run, and a function of one point that trains a model, measures it and returns
a JSON-able record. This module runs such a list:

    store = ResultsStore(path, sweep="glib", preset="full", config=config)   # resumes what is there
    with make_executor(jobs=2) as executor:          # in this process, local processes, or a Dask cluster
        run_points(store, points, measure, executor)  # trains what is missing, saves after each point

The store is one JSON file, {"sweep", "preset", "config", "points": {key: record}, "wall_seconds",
"executor"}, and every record also says which code and which machine made it. Only the process that calls
run_points writes the file, atomically after every finished point, so a killed sweep keeps every finished
point and the file is never half-written; the same command started again trains only what is missing.

The executor is any concurrent.futures.Executor:
    jobs=1                   InProcess: the points run one after the other in this process (the default)
    jobs=N                   WorkerProcesses: N local processes, one point each at a time
    scheduler="local"        a Dask LocalCluster of N single-threaded worker processes, on this machine
    scheduler="tcp://H:8786" the Dask cluster whose scheduler listens there (`pip install -e ".[cluster]"`)
A worker that dies loses only its point: run_points submits it again (Dask's scheduler also re-runs the
tasks of a worker it lost), and only finished points ever reach the file.

Arithmetic that reproduces: every point runs with the BLAS library held to one thread, wherever it runs.
A matrix product's rounding depends on how it is cut into threads, so a point trained in a worker process
then computes exactly what it computes in the main process of the same machine. (Another CPU's BLAS
kernels still round differently: a committed sweep reproduces within the spread of its seeds, not bit for
bit; see docs/architecture.md, "Reproducible on any CPU".)
"""
import contextlib
import functools
import json
import multiprocessing
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import parallel
from ..errors import MinilmError
from ..train import TrainConfig, Trainer

# --------------------------------------------------------------------------------------------------
# What a study is


@dataclass(frozen=True)
class Study:
    """A study as the command line sees it: `python -m minilm NAME [--preset P]` trains the preset's points
    into one results store and prints the report. A new study is one module that declares its STUDY,
    listed in minilm.studies.all_studies(); nothing else changes.

    presets    the preset names (and what each names)
    preset     preset name -> the preset (one clear line for a name it does not know)
    sweep      (the preset, device) -> [(key, point)]; `measure(point)` trains one and returns its record
    report     (results, *baseline results) -> the text `--report` prints
    record     the preset -> what its results file records as the configuration (its fields, by default)
    committed  the presets whose results the course keeps beside its lessons (the others go to runs/)
    baselines  preset -> the preset whose results its report compares it with
    """
    name: str
    help: str
    description: str
    presets: dict
    default: str
    preset: Callable
    sweep: Callable
    measure: Callable
    report: Callable
    record: Callable = asdict
    committed: tuple = ()
    baselines: dict = field(default_factory=dict)

    def config(self, preset_name):
        """What the preset's results file records as its configuration."""
        return self.record(self.preset(preset_name))

    def points(self, preset_name, device=None):
        """The preset's points as (key, point) pairs for run_points."""
        return self.sweep(self.preset(preset_name), device)

    def results_file(self, preset):
        """Where a preset's results live, as a file name: one name per study and preset."""
        return f"{self.name}_{preset}.json"


def planned_points(config, plan, device=None):
    """A study's points as (key, point) pairs for run_points: each planned item p (with p.key) becomes the point
    (config, p, device)."""
    return [(p.key, (config, p, device)) for p in plan(config)]


def once_per_process(build, config):
    """build(config), made once in each process for a configuration (a worker trains many points of one study
    on the same corpus). Keyed by the configuration's JSON: its lists cannot be hashed."""
    return _built(build, type(config), json.dumps(asdict(config), sort_keys=True))


@functools.lru_cache(maxsize=4)
def _built(build, config_class, config_json):
    return build(config_class(**json.loads(config_json)))


# --------------------------------------------------------------------------------------------------
# One point's training: the way every sweep trains a model


def train_sweep_point(model, tokens, steps, batch_size, lr, seed, warmup_steps=20, progress=False, every=0, look=None):
    """Train one model of a sweep on a token stream, the way every sweep does: no evaluation or checkpoint on
    the way, and the batch never cut into shards (shards=1: the same rounding on any number of cores, so a
    committed point reproduces). With every > 0, look(trainer) is called after each `every` steps and at the
    end (the steps themselves are unchanged: one run, paused). Returns (Trainer, seconds of training). Ctrl-C
    stops the whole sweep (KeyboardInterrupt): the points already finished are in the results file."""
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, eval_every=0,
                         checkpoint_every=0, seed=seed, shards=1)
    trainer = Trainer(model, tokens, config=config)
    start, looking = time.time(), 0.0
    for until in [*range(every, steps, every), steps] if every else [steps]:
        trainer.run(until=until, progress=progress)
        if trainer.history.stopped:
            raise KeyboardInterrupt
        if every:
            paused = time.time()
            look(trainer)
            looking += time.time() - paused
    return trainer, time.time() - start - looking


# --------------------------------------------------------------------------------------------------
# The results store


def load_results(path, sweep=None):
    """A results file as a dict; one clear line if it is missing, not JSON, or of another sweep."""
    command = f"`python -m minilm {sweep}`" if sweep else "the study's command"
    try:
        with open(path) as f:
            results = json.load(f)
    except FileNotFoundError:
        raise MinilmError(f"no results at {path}: run {command} first") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MinilmError(f"{path} is not a results file (not JSON): delete it and run {command} again") from None
    if not isinstance(results, dict) or not isinstance(results.get("points"), dict) or "config" not in results:
        raise MinilmError(f"{path} is not a results file (no 'config' and 'points'): run {command} to make one")
    if sweep is not None and results.get("sweep") != sweep:
        raise MinilmError(f"{path} holds a {results.get('sweep')!r} sweep, not a {sweep!r} one: give the right file")
    return results


def choose_preset(presets, name, command):
    """presets[name], or one line that lists the presets there are."""
    if name not in presets:
        raise MinilmError(f"unknown {command} preset {name!r}: use one of {sorted(presets)}")
    return presets[name]


def save_json(data, path):
    """Write atomically: the data goes to a temporary file, reaches the disk, and is renamed over path."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic on POSIX and Windows


class ResultsStore:
    """The results of one sweep in one JSON file, resumable; see the module's docstring."""

    def __init__(self, path, sweep, preset, config):
        self.path = path
        config = json.loads(json.dumps(config))  # as it reads back from the file
        if os.path.exists(path):
            self.data = load_results(path, sweep)
            if self.data["config"] != config:
                raise MinilmError(f"{path} holds results of a different configuration: give another --out, "
                                  f"or delete it to start over")
        else:
            self.data = {"sweep": sweep, "preset": preset, "config": config, "points": {}, "wall_seconds": 0.0}
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            pass  # the access check below says what is wrong
        if not os.access(folder, os.W_OK):  # fail now, not after the first point's minutes of training
            raise MinilmError(f"cannot write to {folder}: choose another --out")

    @property
    def points(self):
        return self.data["points"]

    def add(self, key, record, wall_seconds, executor):
        """Keep one finished point and write the file."""
        self.points[key] = record
        self.data["wall_seconds"] = round(wall_seconds, 1)
        self.data["executor"] = executor
        save_json(self.data, self.path)


# --------------------------------------------------------------------------------------------------
# Where a record came from: the code and the machine


@functools.cache
def code_version():
    """The git commit of the code that ran, with '-dirty' if the package (all of minilm/) had uncommitted
    changes ('unknown' outside a git checkout)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # minilm/studies/ -> minilm/
    git = functools.partial(subprocess.run, cwd=package, capture_output=True, text=True, timeout=10)
    try:
        commit = git(["git", "rev-parse", "HEAD"])
        dirty = git(["git", "status", "--porcelain", "--", "."])
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode:
        return "unknown"
    return commit.stdout.strip()[:10] + ("-dirty" if dirty.stdout.strip() else "")


@functools.cache
def machine():
    """What computed a record: the host, the CPU, the BLAS library and the kernels it chose, NumPy."""
    from threadpoolctl import threadpool_info

    blas = next((b for b in threadpool_info() if b.get("user_api") == "blas"), {})
    return {"host": platform.node(), "cpu": _cpu_name(), "cores": parallel.cpu_cores(),
            "blas": f"{blas.get('internal_api', '?')} {blas.get('version', '')} {blas.get('architecture', '')}".strip(),
            "numpy": np.__version__, "python": platform.python_version()}


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def measured(measure, point):
    """Run measure(point) with one BLAS thread and label its record with the code and the machine. This is
    what every executor runs for every point, in whatever process it lands. The code is read before the
    point runs: a tree edited during an hour-long point must not relabel the code that ran."""
    version = code_version()
    with parallel.one_blas_thread():
        record = measure(point)
    return {**record, "code_version": version, "machine": machine()}


# --------------------------------------------------------------------------------------------------
# Executors


class InProcess(Executor):
    """Runs each submitted call at once, in this process: the default, and the easiest to debug."""

    slots = 1  # run_points hands it one point at a time, so each is saved before the next starts
    description = "in process"

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as e:  # KeyboardInterrupt goes straight up: the finished points are saved
            future.set_exception(e)
        return future


class WorkerProcesses(Executor):
    """N local worker processes (one point each at a time). A pool whose worker died is broken for good in
    concurrent.futures; this one starts a fresh pool on the next submit."""

    def __init__(self, jobs):
        self.jobs, self.slots, self.description = jobs, 2 * jobs, f"{jobs} local processes"
        self._pool = self._new_pool()

    def _new_pool(self):
        # "spawn": each worker starts a fresh interpreter rather than a copy of this one, threads and all
        return ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=exit_with_parent, initargs=(os.getpid(),))

    def submit(self, fn, /, *args, **kwargs):
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def exit_with_parent(parent, every=1.0):
    """In a worker process: exit as soon as the sweep that started it is gone (killed, say, rather than
    stopped with Ctrl-C), instead of training its point to the end for nobody. A daemon thread checks
    every `every` seconds whether this process was handed to a new parent."""
    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


@contextlib.contextmanager
def make_executor(jobs=1, scheduler=None, device=None):
    """The executor the sweep commands' --jobs and --scheduler flags ask for, shut down on exit."""
    if jobs < 1:
        raise MinilmError(f"--jobs must be 1 or more, got {jobs}")
    if (jobs > 1 or scheduler) and device not in (None, "cpu"):
        raise MinilmError("--jobs and --scheduler spread points over CPU processes: leave them out with --device cuda")
    if scheduler:
        with _dask_executor(scheduler, jobs) as executor:
            yield executor
        return
    executor = InProcess() if jobs == 1 else WorkerProcesses(jobs)
    try:
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _dask_executor(scheduler, jobs):
    """A Dask client's executor: on a LocalCluster of `jobs` single-threaded worker processes
    (scheduler="local"), or on the cluster whose scheduler listens at the given address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MinilmError('--scheduler needs Dask\'s distributed package: pip install -e ".[cluster]"') from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=jobs if jobs > 1 else parallel.cpu_cores(), threads_per_worker=1,
                               processes=True, dashboard_address=None)
    try:
        client = Client(cluster if cluster is not None else scheduler, timeout="20s")
    except (OSError, TimeoutError) as e:
        raise MinilmError(f"cannot reach the Dask scheduler at {scheduler} ({e}): start it with `dask scheduler` "
                          f"and its workers with `dask worker {scheduler}`") from None
    executor = client.get_executor(pure=False)  # pure=False: a point re-submitted after a loss runs again
    executor.slots = None  # hand the scheduler every point at once: it places them on free workers
    executor.description = f"Dask cluster {scheduler}"
    try:
        yield executor
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _lost_worker_errors():
    """The exceptions that mean a point's worker died (the point itself did not fail)."""
    errors = (BrokenProcessPool, CancelledError)
    try:
        from distributed import KilledWorker
        return errors + (KilledWorker,)
    except ImportError:
        return errors


# --------------------------------------------------------------------------------------------------
# Running the points


def run_points(store, points, measure, executor, progress=True, retries=3):
    """Run measure(point) for every (key, point) in points whose key the store lacks, on executor, and
    keep each record in the store as it finishes. A point whose worker died is submitted again (up to
    `retries` times); an error raised by measure itself stops the sweep (the finished points are kept).
    Returns the store's data."""
    from tqdm.auto import tqdm

    todo = [(key, point) for key, point in points if key not in store.points]
    start, earlier = time.time(), store.data.get("wall_seconds", 0.0)
    slots = getattr(executor, "slots", None) or len(todo)
    lost = _lost_worker_errors()
    tries = {key: 0 for key, _ in todo}
    waiting, running = list(todo), {}
    bar = tqdm(total=len(points), initial=len(points) - len(todo), unit="point", disable=not progress,
               dynamic_ncols=True)
    while waiting or running:
        while waiting and len(running) < slots:
            key, point = waiting.pop(0)
            running[executor.submit(measured, measure, point)] = (key, point)
        done = next(as_completed(running))
        key, point = running.pop(done)
        try:
            record = done.result()
        except lost as e:
            tries[key] += 1
            if tries[key] > retries:
                raise MinilmError(f"gave up on point {key}: its worker was lost {tries[key]} time(s) "
                                  f"({type(e).__name__}); is a worker running out of memory? The finished points "
                                  f"are saved: run again to resume") from None
            waiting.insert(0, (key, point))
            continue
        store.add(key, record, earlier + time.time() - start, getattr(executor, "description", type(executor).__name__))
        bar.set_postfix_str(f"last finished: {key}", refresh=False)
        bar.update(1)
    bar.close()
    return store.data
