"""Record and replay: how a check runs on a learner's code without sharing a process with it.

A check is one function, `def softmax_rows(softmax)`, whose parameters are the learner's functions or classes.
In the learner's kernel it calls them directly. For the class grade it runs twice, with the same definition:

1. in a child process, on the learner's real functions, each wrapped in a `Recorder` proxy that writes down
   what crosses from the learner's code to the check: every value a call returns (and every array argument it
   changed in place), every attribute the check reads from a learner's object, every call the learner's code
   makes into an object of the check's (e.g. `model.forward`, with its arguments). Only data is written down:
   arrays, numbers, strings, and tuples, lists and dicts of them, to JSON and an .npz read with
   allow_pickle=False; a learner's object is a numbered handle.
2. in the grader's process, which the learner's code never touched, with `Replay` stand-ins that give back,
   in order, what was written down, and make again the calls into the check's objects. The check computes its
   inputs and references itself and compares.

A child that ran other checks, or ran them on other inputs, gives answers out of step with the grader's run
(`OutOfStep`, a failed check) or answers to other questions (wrong values): it gains nothing. The check's
verdict in the child is never read.
"""
import builtins
import json
import traceback
from pathlib import Path

import numpy as np

SCALARS = (bool, int, float, str, type(None))  # what JSON holds as it is


class OutOfStep(AssertionError):
    """The answers that came back do not follow the calls the check makes: the child ran something else."""


# --------------------------------------------------------------------------------------------------
# Data: what a value is written down as (JSON, with arrays in a list beside it), and read back

def is_data(value):
    """An array, a number, a string or None (not a container): it crosses between the processes as it is."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype != object
    return isinstance(value, (*SCALARS, complex))


def encode(value, arrays, handle_of):
    """A JSON-able record of value; arrays are appended to `arrays`, anything that is not data gets a handle."""
    if isinstance(value, np.ndarray) and is_data(value):
        arrays.append(value.copy())  # as it is now: the code that made it may change it later
        return {"array": len(arrays) - 1}
    if isinstance(value, (np.generic, complex)) and is_data(value):
        arrays.append(np.asarray(value))
        return {"scalar": len(arrays) - 1}
    if isinstance(value, SCALARS):
        return {"value": value}
    if type(value) in (tuple, list):
        return {type(value).__name__: [encode(v, arrays, handle_of) for v in value]}
    if type(value) is dict:
        return {"dict": [[encode(k, arrays, handle_of), encode(v, arrays, handle_of)] for k, v in value.items()]}
    return {"handle": handle_of(value)}


def decode(record, arrays, stand_in):
    """The value a record stands for; a handle becomes stand_in(handle)."""
    (kind, x), = record.items()
    if kind == "array":
        return np.array(arrays[x])
    if kind == "scalar":
        return arrays[x][()]
    if kind == "value":
        return x
    if kind in ("tuple", "list"):
        items = [decode(r, arrays, stand_in) for r in x]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {decode(k, arrays, stand_in): decode(v, arrays, stand_in) for k, v in x}
    if kind == "handle":
        return stand_in(x)
    raise OutOfStep(f"an answer of an unknown kind ({kind!r}) came back")


def error_record(e):
    """A raised exception, as data: its type's name, message, and the function it was raised in."""
    frames = traceback.extract_tb(e.__traceback__)
    return {"type": type(e).__name__, "message": str(e), "where": frames[-1].name if frames else None}


def rebuilt_error(record):
    """The exception again: the built-in type of that name, else a new one named so (never the child's class)."""
    kind = getattr(builtins, record["type"], None)
    if not (isinstance(kind, type) and issubclass(kind, Exception)) or issubclass(kind, OutOfStep):
        kind = type(record["type"], (Exception,), {})
    error = kind(record["message"])
    error.where = record["where"]  # the learner's function, as a kernel's traceback would name it
    return error


# --------------------------------------------------------------------------------------------------
# 1. The child: record what the learner's code gives back

def rebuilt(container, convert):
    """A tuple, list or dict with convert() applied to its items: the container itself when nothing changed, so
    that a dict the check passes (a model's parameters) is the one the learner's code changes, as in a kernel."""
    keys = list(container) if type(container) is dict else range(len(container))
    items = {key: convert(container[key]) for key in keys}
    if all(items[key] is container[key] for key in keys):
        return container
    return items if type(container) is dict else type(container)(items.values())


class Log:
    """The events of one check's run, in order. An event is a dict: kind ('call', 'get' or 'callback'),
    depth (how deep in learner-check-learner calls it happened), what it concerns, and its answer."""

    def __init__(self, arrays):
        self.events, self.arrays, self.depth = [], arrays, 0
        self.handles, self.proxies, self.check_objects = {}, {}, {}
        self.keep = []  # every object a handle names stays alive, so no id() is reused

    def handle_of(self, value):
        if isinstance(value, Recorder):
            value = object.__getattribute__(value, "_real")
        if id(value) not in self.handles:
            self.handles[id(value)] = len(self.handles)
            self.keep.append(value)
        return self.handles[id(value)]

    def encode(self, value):
        return encode(value, self.arrays, self.handle_of)

    def recorder(self, value):
        """What the check sees of a learner's value: data as it is, an object through a Recorder."""
        if type(value) in (tuple, list, dict):
            return rebuilt(value, self.recorder)
        if is_data(value):
            return value
        handle = self.handle_of(value)
        if handle not in self.proxies:
            self.proxies[handle] = Recorder(self, value, handle)
        return self.proxies[handle]

    def for_learner(self, value):
        """An argument the check passes to the learner's code: its own objects back unwrapped, the check's
        objects (a model) through a CheckObject, which records the calls the learner's code makes into them."""
        if isinstance(value, Recorder):
            return object.__getattribute__(value, "_real")
        if type(value) in (tuple, list, dict):
            return rebuilt(value, self.for_learner)
        if is_data(value) or callable(value):
            return value
        if id(value) not in self.check_objects:
            self.check_objects[id(value)] = (len(self.check_objects), CheckObject(self, value, len(self.check_objects)))
            self.keep.append(value)
        return self.check_objects[id(value)][1]

    def answer(self, event, run):
        """Run `run()` (the learner's code), one level deeper; write down its value or the error it raised."""
        self.events.append(event)
        self.depth += 1
        try:
            value = run()
        except Exception as e:  # whatever the learner's code raises, the check sees it again when replayed
            event["raised"] = error_record(e)
            raise
        finally:
            self.depth -= 1
        event["value"] = self.encode(value)
        return self.recorder(value)


def array_slots(args, kwargs):
    """(place, array) for each array argument and each array value of a dict argument: what a call may change
    in place. place: [argument position or keyword, dict key or None]."""
    slots = []
    for where, arg in [*enumerate(args), *kwargs.items()]:
        if isinstance(arg, np.ndarray):
            slots.append(([where, None], arg))
        elif type(arg) is dict:
            slots += [([where, key], v) for key, v in arg.items() if isinstance(v, np.ndarray) and isinstance(key, str)]
    return slots


def refuse_special(name):
    """A learner's object has no __special__ attributes, in the child or here: numpy asks for
    __array_interface__ (a pointer to memory), and its answer must never be the child's to give."""
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)


class Recorder:
    """A learner's function, class or object, as the check sees it in the child."""

    def __init__(self, log, real, handle):
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_handle", handle)

    def __call__(self, *args, **kwargs):
        log, real = object.__getattribute__(self, "_log"), object.__getattribute__(self, "_real")
        args, kwargs = log.for_learner(args), log.for_learner(kwargs)
        dicts = {where: dict(arg) for where, arg in [*enumerate(args), *kwargs.items()] if type(arg) is dict}
        before = [(place, arr, arr.copy()) for place, arr in array_slots(args, kwargs)]
        event = {"kind": "call", "target": object.__getattribute__(self, "_handle"), "depth": log.depth}
        result = log.answer(event, lambda: real(*args, **kwargs))
        event["changed"] = changes(args, kwargs, dicts, before, log)
        return result

    def __getattr__(self, name):
        refuse_special(name)
        log, real = object.__getattribute__(self, "_log"), object.__getattribute__(self, "_real")
        event = {"kind": "get", "target": object.__getattribute__(self, "_handle"), "name": name, "depth": log.depth}
        return log.answer(event, lambda: getattr(real, name))

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_real"), name, object.__getattribute__(self, "_log").for_learner(value))


def changes(args, kwargs, dicts, before, log):
    """What a call changed in its arguments: arrays changed in place, dict entries set or deleted."""
    out = [{"place": place, "in_place": log.encode(arr)} for place, arr, old in before
           if arr.shape != old.shape or arr.tobytes() != old.tobytes()]
    for where, old in dicts.items():
        new = args[where] if isinstance(where, int) else kwargs[where]
        out += [{"place": [where, key], "set": log.encode(value)} for key, value in new.items()
                if isinstance(key, str) and old.get(key, None) is not value]
        out += [{"place": [where, key], "deleted": True} for key in old if key not in new and isinstance(key, str)]
    return out


class CheckObject:
    """An object of the check's (a GPT) handed to the learner's code in the child: its methods' calls are
    written down with their arguments, so the grader can make them again on its own object."""

    def __init__(self, log, real, number):
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_number", number)

    def __getattr__(self, name):
        log, real = object.__getattribute__(self, "_log"), object.__getattribute__(self, "_real")
        attribute = getattr(real, name)
        if name.startswith("_") or not callable(attribute):  # only public methods are called again in the grader
            return attribute

        def callback(*args, **kwargs):
            log.events.append({"kind": "callback", "object": object.__getattribute__(self, "_number"), "name": name,
                               "args": log.encode(args), "kwargs": log.encode(kwargs), "depth": log.depth})
            log.depth += 1
            try:
                return attribute(*log.recorder(args), **log.recorder(kwargs))
            finally:
                log.depth -= 1
        return callback


def record_check(check, namespace, arrays):
    """Run one check in the child on the learner's functions (its arrays go to `arrays`).
    Returns {"found": {name: the learner's value, as a record}, "events": [...]}."""
    import inspect

    log = Log(arrays)
    names = list(inspect.signature(check).parameters)
    found = {name: log.encode(namespace[name]) for name in names if name in namespace}
    if len(found) == len(names):
        try:
            check(*(log.recorder(namespace[name]) for name in names))
        except Exception:  # the check failed here; the grader's own run of it finds out why
            pass
    return {"found": found, "events": log.events}


# --------------------------------------------------------------------------------------------------
# 2. The grader: give the answers back, in order

class Replay:
    """One check's answers as the grader reads them; stand_in(n) is the learner's object with handle n."""

    def __init__(self, events, arrays):
        self.events, self.arrays, self.next = events, arrays, 0
        self.stand_ins, self.check_objects, self.numbers = {}, {}, {}  # number -> the check's object, id -> number

    def stand_in(self, handle):
        if handle not in self.stand_ins:
            self.stand_ins[handle] = StandIn(self, handle)
        return self.stand_ins[handle]

    def decode(self, record):
        return decode(record, self.arrays, self.stand_in)

    def take(self, kind, target, name=None):
        """The next event, which must be this call or read."""
        if self.next >= len(self.events):
            raise OutOfStep(f"no answer came back for the check's call {self.next + 1}: the learner's code stopped "
                            f"or ran other calls")
        event = self.events[self.next]
        if (event.get("kind"), event.get("target"), event.get("name")) != (kind, target, name):
            raise OutOfStep(f"answer {self.next + 1} came back out of step with the check's calls")
        self.next += 1
        return event

    def register(self, args):
        """Number the check's objects among a call's arguments, in the order the child numbered them."""
        for value in args:
            if type(value) in (tuple, list):
                self.register(value)
            elif type(value) is dict:
                self.register(value.values())
            elif not is_data(value) and not callable(value) and id(value) not in self.numbers:
                self.numbers[id(value)] = len(self.check_objects)
                self.check_objects[len(self.check_objects)] = value

    def callbacks(self, depth):
        """Make again, on the grader's objects, the calls the learner's code made into the check's objects."""
        while self.next < len(self.events) and self.events[self.next].get("kind") == "callback" \
                and self.events[self.next].get("depth") == depth:
            event = self.events[self.next]
            self.next += 1
            target, name = self.check_objects.get(event.get("object")), event.get("name")
            if target is None:
                raise OutOfStep("the learner's code called an object the check never gave it")
            if not isinstance(name, str) or name.startswith("_"):
                raise OutOfStep(f"the learner's code called {name!r}, a private method, of the check's object")
            try:
                getattr(target, name)(*self.decode(event["args"]), **self.decode(event["kwargs"]))
            except OutOfStep:
                raise
            except Exception:  # the learner's code saw this error in the child, and its answer shows what it did
                pass

    def answer(self, event):
        self.callbacks(event.get("depth", 0) + 1)
        if "raised" in event:
            raise rebuilt_error(event["raised"])
        if "value" not in event:
            raise OutOfStep("an answer came back without its value")
        return self.decode(event["value"])


def apply_changes(changed, args, kwargs, replay):
    """Make the changes the learner's call made to its arguments, on the grader's arguments."""
    for change in changed:
        where, key = change["place"]
        arg = args[where] if isinstance(where, int) and where < len(args) else kwargs.get(where)
        if arg is None:
            raise OutOfStep("an argument changed that the check never passed")
        if "deleted" in change:
            arg.pop(key, None)
        elif "set" in change:
            arg[key] = replay.decode(change["set"])
        else:
            target = arg if key is None else arg[key]
            value = replay.decode(change["in_place"])
            if not isinstance(target, np.ndarray) or target.shape != np.shape(value):
                raise OutOfStep("an array changed shape in place")
            np.copyto(target, value, casting="unsafe")


class StandIn:
    """A learner's function, class or object in the grader's process: it answers from the replay."""

    def __init__(self, replay, handle):
        object.__setattr__(self, "_replay", replay)
        object.__setattr__(self, "_handle", handle)

    def __call__(self, *args, **kwargs):
        replay = object.__getattribute__(self, "_replay")
        replay.register([*args, *kwargs.values()])
        event = replay.take("call", object.__getattribute__(self, "_handle"))
        try:
            return replay.answer(event)
        finally:
            apply_changes(event.get("changed", []), args, kwargs, replay)

    def __getattr__(self, name):
        refuse_special(name)
        replay = object.__getattribute__(self, "_replay")
        return replay.answer(replay.take("get", object.__getattribute__(self, "_handle"), name))

    def __setattr__(self, name, value):
        pass  # the learner's object lives in the child; what it holds after this is read from there


def replay_namespace(answers, arrays):
    """The learner's functions that a check found, as stand-ins answering from its recorded events."""
    replay = Replay(answers["events"], arrays)
    return {name: replay.decode(record) for name, record in answers["found"].items()}


# --------------------------------------------------------------------------------------------------
# The file format: one check's answers in check_K.json (the events) and check_K.npz (their arrays)

def save(folder, k, answers, arrays):
    np.savez(Path(folder) / f"check_{k}.npz", *arrays)
    (Path(folder) / f"check_{k}.json").write_text(json.dumps(answers))


def load(folder, k, max_bytes):
    """(answers, arrays) of check k as saved; None if the child never saved them. Raises ValueError when
    the files are too large or not what save writes."""
    paths = [Path(folder) / f"check_{k}.{ext}" for ext in ("json", "npz")]
    if not all(path.is_file() or path.is_symlink() for path in paths):
        return None
    if any(path.is_symlink() for path in paths):
        raise ValueError("they are links to other files")
    if sum(path.stat().st_size for path in paths) > max_bytes:
        raise ValueError(f"its answers take more than {max_bytes // 2**20} MiB")
    answers = json.loads(paths[0].read_text())
    with np.load(paths[1], allow_pickle=False) as npz:
        arrays = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    if not isinstance(answers, dict) or not isinstance(answers.get("found"), dict) \
            or not isinstance(answers.get("events"), list):
        raise ValueError("its answers are not in the grader's format")
    return answers, arrays
