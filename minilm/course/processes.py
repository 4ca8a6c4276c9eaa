"""The grader's child processes: the folder they import minilm from, the limits they run under, and how
the whole tree of processes a child started is stopped, whether it finished, hung or exited early.
"""
import os
import signal
import subprocess
from pathlib import Path

from .paths import HOME

# What a child keeps of the grader's environment: where programs and libraries are, the locale, BLAS's threads.
KEPT_VARIABLES = ("PATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "PYTHONHOME", "SYSTEMROOT", "LANG", "LC_ALL",
                  "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def minilm_home():
    """The folder to put on the kernels' PYTHONPATH so that they import this minilm: the checkout, or the folder
    it was installed into (pip install --target); "" for site-packages, which the kernel reads anyway (and which
    must not come before the standard library)."""
    import site

    site_folders = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    return "" if HOME in site_folders else str(HOME)


def kill_tree(pid):
    """Kill a process and every process below it: pytest, and the kernel that nbval started in a session
    of its own (so a process group would miss it). psutil finds the descendants by their parents, on Linux,
    macOS and Windows alike; they are listed before any is killed, so none is orphaned out of the tree first."""
    import psutil

    try:
        top = psutil.Process(pid)
        tree = [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        try:
            process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(tree, timeout=5)


def contained_env(folder):
    """A child's environment: this minilm on its path, its home and temporary folder the scratch folder, and
    none of the grader's other variables (tokens, keys)."""
    kept = {name: os.environ[name] for name in KEPT_VARIABLES if name in os.environ}
    path = os.pathsep.join(filter(None, [minilm_home(), os.environ.get("PYTHONPATH")]))
    return {**kept, "PYTHONPATH": path, "HOME": str(folder), "TMPDIR": str(folder), "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1"}


def limits(memory_mib, file_mib):
    """What the child sets on itself before it starts Python: its address space (numpy's allocations fail with
    MemoryError past it), the largest file it may write, and no core dumps."""
    def apply():
        import resource

        for limit, mib in ((resource.RLIMIT_AS, memory_mib), (resource.RLIMIT_FSIZE, file_mib),
                           (resource.RLIMIT_CORE, 0)):
            resource.setrlimit(limit, (mib * 2**20, mib * 2**20))
    return apply


def stop(proc):
    """Stop a child and everything it started: its process group (which keeps the processes whose parent
    already exited) and its tree (which keeps those that left the group)."""
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    kill_tree(proc.pid)
    proc.wait()


def run_contained(cmd, folder, timeout, memory_mib, file_mib):
    """Run cmd in `folder`, in a session of its own, under the limits; its exit code, None if it ran past
    `timeout` seconds. Whatever it started is stopped before this returns."""
    posix = os.name == "posix"
    proc = subprocess.Popen(cmd, cwd=folder, env=contained_env(folder), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=posix,
                            preexec_fn=limits(memory_mib, file_mib) if posix else None)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        stop(proc)
