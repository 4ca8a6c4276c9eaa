"""The learner's guess, checked in code. A lesson's cell tagged `guess` asks for a prediction before the result
(a number, an ordering, a set); a later cell measures it and prints one of these lines, which says how far off
the guess was. A guess left as its placeholder (None, or an empty list) gets a line that says what to write.

    my_guess = None  # your guess: the loss of the largest model, in nats
    ...
    print(guess.compare_number(my_guess, measured, "the largest model's loss", unit=" nats"))
"""
import math


def _waiting(what, measured):
    return f"no guess yet for {what}: write yours in the guess cell above, run it, then run this cell again " \
           f"(measured: {measured})"


def compare_number(guess, measured, what, unit=""):
    """One line: the guess against the measurement, as a difference and a ratio."""
    measured = float(measured)
    if guess is None:
        return _waiting(what, f"{measured:.4g}{unit}")
    guess = float(guess)
    if not math.isfinite(guess):
        return f"your guess for {what} is {guess}, not a number to compare: write a finite number"
    line = f"{what}: you guessed {guess:.4g}{unit}, measured {measured:.4g}{unit}, off by {guess - measured:+.3g}{unit}"
    if guess != 0 and measured != 0 and (guess > 0) == (measured > 0):
        ratio = max(guess / measured, measured / guess)
        line += f" (within a factor of {ratio:.2f})" if ratio < 1.995 else f" (a factor of {ratio:.1f} away)"
    return line


def compare_order(guess, measured, what):
    """One line: a guessed ordering (a list, first to last) against the measured one; counts the pairs of items
    that the guess puts in the measured order. Items the measurement does not know are named."""
    if not guess:
        return _waiting(what, ", ".join(map(str, measured)))
    unknown = [g for g in guess if g not in measured]
    if unknown:
        return f"your guess for {what} names {unknown}, which the measurement does not have: choose from " \
               f"{', '.join(map(str, measured))}"
    rank = {item: i for i, item in enumerate(measured)}
    pairs = [(a, b) for i, a in enumerate(guess) for b in guess[i + 1:]]
    agree = sum(rank[a] < rank[b] for a, b in pairs)
    verdict = "exactly the measured order" if agree == len(pairs) and len(guess) == len(measured) else \
        f"{agree} of {len(pairs)} pairs in the measured order"
    return f"{what}: you guessed {', '.join(map(str, guess))}; measured {', '.join(map(str, measured))}: {verdict}"


def compare_set(guess, measured, what):
    """One line: a guessed set of items against the measured one (which you named, which you missed)."""
    if not guess:
        return _waiting(what, ", ".join(map(str, measured)))
    hits = [g for g in guess if g in measured]
    extra = [g for g in guess if g not in measured]
    missed = [m for m in measured if m not in guess]
    return f"{what}: measured {', '.join(map(str, measured))}; you named {len(hits)} of {len(measured)}" + \
        (f", missed {', '.join(map(str, missed))}" if missed else "") + \
        (f"; named but not among them: {', '.join(map(str, extra))}" if extra else "")
