"""Feedback helpers that the checks call to turn a wrong array into a sentence: which position can see which
in a mask, which factor, axis or term a result is off by, which gradient is off and by how much.
"""
import re

import numpy as np


# --------------------------------------------------------------------------------------------------
# An error, in one line

def error_line(ename, evalue, where=None):
    """One readable line for an error raised in a cell: the assert's message, or what raised what where.

    where: the function the error was raised in (the innermost frame), if known."""
    evalue = " ".join(str(evalue).split())
    if ename == "AssertionError" and evalue:
        return evalue
    if ename == "NotImplementedError":
        func = f"{where} " if where else ""
        return f"not implemented yet: {func}still raises NotImplementedError (replace it with your code)"
    inside = f" (in {where})" if where else ""
    return f"{ename}{inside}: {evalue}" if evalue else f"{ename}{inside}"


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# IPython frames read "Cell In[3], line 5, in softmax(logits)", or "File /path/checks.py:12, in softmax_rows(softmax)"
FRAME = re.compile(r", in ([A-Za-z_][\w.]*)\(")


def innermost_function(traceback_text):
    """The function named by the last frame of an IPython traceback, or None."""
    where = FRAME.findall(ANSI.sub("", traceback_text))
    return where[-1] if where else None



# --------------------------------------------------------------------------------------------------
# A wrong array, in words

def factor_of(got, expected):
    """The number s with got = s * expected (to 1e-6 relative), or None if there is none."""
    got, expected = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (got, expected))
    norm2 = expected @ expected
    if expected.size < 2 or norm2 == 0:  # any number is a multiple of another: a factor says nothing
        return None
    s = got @ expected / norm2  # the least-squares factor
    if abs(s) > 1e-12 and np.linalg.norm(got - s * expected) <= 1e-6 * np.linalg.norm(got):
        return float(s)
    return None


def factor_hint(s):
    return "a sign error?" if np.isclose(s, -1) else "a missing or extra factor?"


def lower_precision(got, expected):
    """True when got is a float array less precise than expected (float32 for float64)."""
    got, expected = np.asarray(got), np.asarray(expected)
    return got.dtype.kind == expected.dtype.kind == "f" and got.dtype.itemsize < expected.dtype.itemsize


def precision_problem(name, got, expected):
    if not lower_precision(got, expected):
        return ""
    return (f"{name} is {np.asarray(got).dtype}, but must be {np.asarray(expected).dtype} like its inputs: "
            f"compute in {np.asarray(expected).dtype} ({np.asarray(got).dtype} keeps only about "
            f"{np.finfo(np.asarray(got).dtype).precision} digits)")


def mismatch(name, got, expected, rtol=1e-10, atol=1e-12, mistakes=()):
    """'' if got equals expected within the tolerance, else a sentence saying what is off.

    mistakes: (description, array) pairs, the arrays that known mistakes give (e.g. the unbiased variance);
    when got matches one as closely as a right answer must match expected, the message is
    f"{name} {description}". Otherwise it names a wrong shape or dtype, inf/NaN, a constant factor or sign,
    or the largest difference."""
    if got is None:
        return f"{name} is None: did you forget to return it?"
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return f"{name} must have shape {expected.shape}, got {got.shape}"
    if lower_precision(got, expected):
        return precision_problem(name, got, expected)
    if np.allclose(got, expected, rtol=rtol, atol=atol):
        return ""
    if np.isfinite(expected).all() and not np.isfinite(got).all():
        return f"{name} has inf or NaN entries where the right values are finite (an overflow, or a division by 0?)"
    for description, wrong in mistakes:
        if np.shape(wrong) == got.shape and np.allclose(got, wrong, rtol=rtol, atol=atol):
            return f"{name} {description}"
    s = factor_of(got, expected)
    if s is not None:
        return f"{name} is {s:.4g} times the right value ({factor_hint(s)})"
    diff = np.abs(got - expected)
    at = np.unravel_index(np.argmax(diff), diff.shape)
    where = f" at index {tuple(int(i) for i in at)}" if at else ""
    message = f"{name} is off by up to {diff[at]:.3g}:{where} it must be {expected[at]:.6g}, got {got[at]:.6g}"
    if 1e-9 < diff.max() / max(np.abs(expected).max(), 1e-300) < 1e-5:
        message += " (about float32 precision: is a step computed in float32?)"
    return message


def gradient_problem(name, numeric, analytic, tol=1e-6, reference="finite differences"):
    """'' if the analytic gradient matches the true one (from finite differences, or a trusted reference),
    else what is off and by how much."""
    if analytic is None:
        return f"no gradient returned for {name}"
    if lower_precision(analytic, numeric):
        return precision_problem(f"the gradient w.r.t. {name}", analytic, numeric)
    numeric = np.asarray(numeric, dtype=np.float64).reshape(-1)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.size != numeric.size:
        return (f"gradient w.r.t. {name} has {analytic.size} entries, but {name} has {numeric.size}: "
                f"it must have {name}'s shape")
    analytic = analytic.reshape(-1)
    err = np.linalg.norm(numeric - analytic) / max(np.linalg.norm(numeric) + np.linalg.norm(analytic), 1e-300)
    if err <= tol:
        return ""
    msg = f"gradient w.r.t. {name} off by relative error {err:.1e} (a correct backward pass gets below {tol:.0e})"
    s = factor_of(analytic, numeric)
    if s is not None:
        return msg + f": it is {s:.4g} times the true gradient ({factor_hint(s)})"
    i = int(np.argmax(np.abs(numeric - analytic)))
    return msg + (f"; e.g. flat entry {i}: {reference} give{'s' if reference.startswith('the ') else ''} "
                  f"{numeric[i]:.4g}, yours {analytic[i]:.4g}")


def gradient_problems(loss_fn, arrays, grads, tol=1e-6):
    """Check every analytic gradient against central differences of loss_fn(): a list of problems (empty if none).

    arrays: dict name -> float64 array that loss_fn() reads (perturbed in place and restored);
    grads: dict name -> your gradient of loss_fn() at those arrays.
    """
    from ..finite_differences import numeric_grad

    problems = []
    for name, array in arrays.items():
        _, numeric = numeric_grad(loss_fn, array)
        problems.append(gradient_problem(name, numeric, grads.get(name), tol))
    return [p for p in problems if p]


def explained_call(what, hint, fn, *args):
    """fn(*args), where a ValueError (arrays whose shapes do not fit) fails the check with what was running
    and what to look at, instead of a bare traceback."""
    try:
        return fn(*args)
    except ValueError as e:
        raise AssertionError(f"{what} raised ValueError ({' '.join(str(e).split())}): {hint}") from None


def mask_problem(got, expected, name="mask"):
    """'' if the masks agree, else the first disagreement as a sentence.

    Queries are the last T_q of T_k positions (as in a KV cache), so positions are absolute.
    """
    got = np.asarray(got)
    if got.shape != expected.shape:
        return f"{name} must have shape {expected.shape} (queries, keys), got {got.shape}"
    if got.dtype != bool:
        return f"{name} must be a boolean array (True where a query may attend), got dtype {got.dtype}"
    wrong = np.argwhere(got != expected)
    if len(wrong) == 0:
        return ""
    i, j = wrong[0]
    pos = i + expected.shape[1] - expected.shape[0]  # absolute position of query i
    verb = "can see" if got[i, j] else "cannot see"
    must = "must not" if got[i, j] else "must"
    return f"{name}: position {pos} {verb} position {j}, but it {must}"


def attention_sees(attend, k, v):
    """Which keys each query's output depends on: sees[i, j] is True when changing key and value j changes the
    output at query i. attend(k, v) -> out (B, nh, Tq, hs) runs the attention under test; k, v: (B, nh, Tk, hs)."""
    out = np.asarray(attend(k, v))
    sees = np.zeros((out.shape[2], k.shape[2]), dtype=bool)
    for j in range(k.shape[2]):
        k2, v2 = k.copy(), v.copy()
        k2[:, :, j] += 1.0
        v2[:, :, j] += 1.0
        sees[:, j] = np.abs(np.asarray(attend(k2, v2)) - out).max(axis=(0, 1, 3)) > 1e-12
    return sees


def attention_problem(sees, mask, name="attention"):
    """'' if the keys that change each query's output are exactly the ones its mask allows."""
    problem = mask_problem(sees, mask, name)
    return problem.replace(f"{name}: ", f"{name}: the output at ", 1)


# --------------------------------------------------------------------------------------------------
# Wrong tokens, in words (byte-pair encoding)

def shown(ids):
    """A list of ids as it prints, with numpy's integers as plain numbers."""
    return [int(i) if isinstance(i, (int, np.integer)) else i for i in ids]


def ids_problem(call, got, expected, mistakes=()):
    """'' if got, a sequence of ids, is expected; else the mistake it matches ((description, ids) pairs, as for
    mismatch), or both lists."""
    if got is None:
        return f"{call} returned None: did you forget to return it?"
    if not isinstance(got, (list, tuple, np.ndarray)):
        return f"{call} must return a list of ids"
    got = shown(np.asarray(got).reshape(-1) if isinstance(got, np.ndarray) else got)
    if got == list(expected):
        return ""
    for description, wrong in mistakes:
        if got == list(wrong):
            return f"{call} {description}"
    return f"{call} must give {shown(expected)}, got {got}"


def counts_problem(name, got, expected, mistakes=()):
    """'' if got, a dict {key: count}, holds expected's counts (a key counted 0 times may be left out); else the
    mistake it matches ((description, dict) pairs), or the first key counted wrong."""
    if got is None:
        return f"{name} is None: did you forget to return it?"
    if type(got) is not dict:
        return f"{name} must be a plain dict {{(a, b): count}}: wrap a Counter or a defaultdict in dict(...)"
    wrong = [key for key in sorted(set(got) | set(expected), key=str) if got.get(key, 0) != expected.get(key, 0)]
    if not wrong:
        return ""
    for description, counts in mistakes:
        if all(got.get(key, 0) == counts.get(key, 0) for key in set(got) | set(counts)):
            return f"{name} {description}"
    key = wrong[0]
    return f"{name} counts the pair {key} {got.get(key, 0)} times, but it occurs {expected.get(key, 0)} times"


def pair_problem(what, got, expected, counts):
    """'' if got is the pair expected, the most frequent of counts ({pair: count} of the chunks); else why not:
    a tie broken the other way, a pair that spans two chunks, or one less frequent."""
    got = tuple(shown(got)) if isinstance(got, (list, tuple, np.ndarray)) else got
    if got == expected:
        return ""
    if got in counts and counts[got] == counts[expected]:
        return (f"{what} is {got}, which ties with {expected} at {counts[expected]} occurrences: a tie goes to the "
                f"smaller pair of ids, {expected} (the smallest (-count, pair), as train_bpe_plain picks)")
    if got not in counts:
        return (f"{what} is {got}, a pair that occurs inside no chunk: does your count cross a chunk's edge? "
                f"The most frequent pair is {expected}")
    run = " (in a run a a a, the pair (a, a) counts once)" if got[0] == got[1] else ""
    return f"{what} is {got}, which occurs {counts[got]} times{run}, but {expected} occurs {counts[expected]} times"
