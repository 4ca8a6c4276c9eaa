"""The checks of exercise 06: fit a scaling law and extrapolate it.

The laws and the noise come from fixed seeds, so a wrong fit fails on every run."""
import numpy as np

from minilm.course.feedback import mismatch

LN10 = np.log(10)


def random_law(rng):
    """A power law like the ones real sweeps give: a in [2, 20], alpha in [0.03, 0.4]."""
    return rng.uniform(2, 20), rng.uniform(0.03, 0.4)


def fit_problem(fit_power_law, C, L, a, alpha, rtol):
    """'' if fit_power_law(C, L) gives (a, alpha), else which mistake it makes."""
    got_a, got_alpha = fit_power_law(C.copy(), L.copy())
    alpha_mistakes = [("has the wrong sign: the slope of log L against log C is -alpha", -alpha),
                      ("mixes logarithms (log10 on one axis, ln on the other): use the same one on both axes", alpha * LN10),
                      ("mixes logarithms (ln on one axis, log10 on the other): use the same one on both axes", alpha / LN10)]
    a_mistakes = [("is log a, the intercept itself: a = exp(intercept)", np.log(a)),
                  ("is log10 a: a = 10**intercept when you fit in log10", np.log10(a))]
    return (mismatch("your alpha", got_alpha, alpha, rtol=rtol, mistakes=alpha_mistakes)
            or mismatch("your a", got_a, a, rtol=rtol, mistakes=a_mistakes))


def exact_law(fit_power_law):
    """on exact power-law data the fit recovers a and alpha, even from two points"""
    rng = np.random.default_rng(601)
    for n in (2, 6):
        a, alpha = random_law(rng)
        C = np.logspace(13, 17, n) * rng.uniform(1, 3)
        problem = fit_problem(fit_power_law, C, a * C ** -alpha, a, alpha, rtol=1e-6)
        assert not problem, f"data made with L = {a:.3f} * C^-{alpha:.4f} ({n} points): {problem}"


def least_squares(fit_power_law):
    """on noisy data it is the least-squares line in log-log space"""
    rng = np.random.default_rng(602)
    a, alpha = random_law(rng)
    C = np.logspace(12, 16, 8)
    L = a * C ** -alpha * np.exp(rng.normal(0, 0.02, size=8))  # 2% multiplicative noise
    slope, intercept = np.polyfit(np.log(C), np.log(L), 1)
    problem = fit_problem(fit_power_law, C, L, np.exp(intercept), -slope, rtol=1e-6)
    assert not problem, f"on 8 noisy points, the least-squares line gives a = {np.exp(intercept):.5g}, alpha = {-slope:.5f}: {problem}"


def predict(predict_loss):
    """predict_loss evaluates the law on arrays and numbers"""
    a, alpha = random_law(np.random.default_rng(603))
    C = np.logspace(14, 18, 5)
    mistakes = [("uses C**alpha: the law is a * C**(-alpha)", a * C ** alpha),
                ("leaves out a: the law is a * C**(-alpha)", C ** -alpha)]
    problem = mismatch(f"predict_loss(C, a={a:.3f}, alpha={alpha:.4f})", predict_loss(C.copy(), a, alpha), a * C ** -alpha, rtol=1e-12, mistakes=mistakes)
    assert not problem, problem
    problem = mismatch("predict_loss(1e15, a, alpha)", predict_loss(1e15, a, alpha), a * 1e15 ** -alpha, rtol=1e-12)
    assert not problem, f"{problem} (it must work on a plain number too)"


def extrapolation(fit_power_law, predict_loss):
    """fitted on six small runs, it predicts three bigger held-out runs within 5%"""
    rng = np.random.default_rng(604)
    a, alpha = random_law(rng)
    C = np.logspace(12, 17, 9)  # 5 orders of magnitude of compute
    L = a * C ** -alpha * np.exp(rng.normal(0, 0.005, size=9))  # 0.5% run-to-run noise
    pred = predict_loss(C[6:], *fit_power_law(C[:6], L[:6]))
    rel = np.abs(pred - L[6:]) / L[6:]
    assert rel.max() < 0.05, (f"fitted on C <= {C[5]:.0e}, your law predicts {[f'{x:.4g}' for x in pred]} for the held-out runs "
                              f"at C = {C[6]:.0e}..{C[8]:.0e}; they measured {[f'{x:.4g}' for x in L[6:]]} (off by up to {rel.max():.3g} of the loss)")


PARTS = {"fit_power_law": [exact_law, least_squares],
         "predict_loss": [predict, extrapolation]}
