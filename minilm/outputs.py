"""Where a command writes, checked before it works: a run that could not write its result refuses before it
starts, an output never lands on one of its own inputs, and no file the user has is replaced by accident.

    check_file_output("runs/ft.npz", "--out", inputs=["base.npz", "pairs.jsonl"])  # before the training
    check_folder_output("runs/text", "--out")
    refuse_to_replace("runs/ft.npz", "--out")   # an existing file: the command asks for --resume or --overwrite

Each check raises a MinilmError: one line that names the flag, the path and what to give instead.
"""
import os
import tempfile

from .errors import MinilmError


def same_file(a, b):
    """Whether the paths a and b name one file (through links too); one that does not exist yet is compared by name."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def nearest_existing(path):
    """The path itself if it exists, else its closest existing parent folder (where it would be made)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_can_write_in(folder, flag, path):
    """A file can be made in folder (tried, not guessed from permission bits: root, /proc and read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".minilm-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MinilmError(f"cannot write {flag} {path}: {e.strerror or e} in {folder} "
                          "(choose a folder you can write to)") from None


def check_not_an_input(path, flag, inputs):
    for given in inputs:
        if given is not None and same_file(path, given):
            raise MinilmError(f"{flag} {path} is also an input of this command ({given}): "
                              "writing it would destroy what it reads; give another path")


def check_file_output(path, flag, inputs=()):
    """path can be written as a file: not a folder, its folder writable (or makeable), none of the inputs."""
    if os.path.isdir(path):
        raise MinilmError(f"{flag} {path} is a folder: give a file name")
    folder = nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(folder):
        raise MinilmError(f"cannot write {flag} {path}: {folder} is a file, not a folder")
    check_can_write_in(folder, flag, path)
    check_not_an_input(path, flag, inputs)


def check_folder_output(path, flag):
    """path can be a folder to write in: not a file, and writable (or makeable)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise MinilmError(f"{flag} {path} is a file: give a folder")
    folder = nearest_existing(path)
    if not os.path.isdir(folder):
        raise MinilmError(f"cannot write {flag} {path}: {folder} is a file, not a folder")
    check_can_write_in(folder, flag, path)


def refuse_to_replace(path, flag, how="--resume to continue that run, --overwrite to replace it"):
    """An existing file at path is the user's: say so rather than write over it."""
    if os.path.exists(path):
        raise MinilmError(f"{path} exists: give {how}, or another {flag}")
