# %% [markdown]
# # Exercise 06 — fit a scaling law and extrapolate it
#
# *Follows lesson 03 (`lessons/03_scaling_curves.ipynb`).*
#
# The lecture's claim: loss falls predictably with compute, so from a few small runs you can predict the
# loss of a bigger one before paying for it. "Predictably" means a **power law**,
#
# $$L(C) = a \cdot C^{-\alpha},$$
#
# which is a straight line on log-log axes: $\log L = \log a - \alpha \log C$. So fitting it is ordinary
# least squares on $(\log C, \log L)$, the slope is $-\alpha$ and the intercept is $\log a$. Lesson 03 drew
# these lines through our own sweep; here you write the fit and use it to predict runs it has not seen.
#
# | function | input | output |
# |---|---|---|
# | `fit_power_law(C, L)` | `C`, `L`: 1-D arrays of compute (FLOPs) and loss, same length ≥ 2 | `(a, alpha)`, floats, with `L ≈ a * C**(-alpha)` |
# | `predict_loss(C, a, alpha)` | `C` an array (or a number) | the law's loss at `C`, same shape |
#
# **Hints.** `np.polyfit(x, y, 1)` returns `[slope, intercept]` of the least-squares line. Use the same
# logarithm on both axes (natural `np.log` is simplest), and remember that the intercept is $\log a$, not $a$.
# Compute is huge (`1e15` FLOPs and more): never fit on the raw numbers.
#
# Grade it: `python -m minilm grade exercises/06_power_law_fit.ipynb`.

# %%
import numpy as np

rng = np.random.default_rng()  # unseeded: every run of the checks draws fresh inputs


def random_law():
    """A power law like the ones real sweeps give: a in [2, 20], alpha in [0.03, 0.4]."""
    return rng.uniform(2, 20), rng.uniform(0.03, 0.4)


# %%
def fit_power_law(C, L):
    """Least squares in log-log space. C, L: (n,) -> (a, alpha) with L ≈ a * C**(-alpha)"""
    ### BEGIN SOLUTION
    slope, intercept = np.polyfit(np.log(C), np.log(L), 1)  # log L = intercept + slope * log C
    return float(np.exp(intercept)), float(-slope)
    ### END SOLUTION


# %%
def predict_loss(C, a, alpha):
    """The power law's loss at compute C (a number or an array)."""
    ### BEGIN SOLUTION
    return a * np.asarray(C, dtype=np.float64) ** (-alpha)
    ### END SOLUTION


# %% [markdown]
# ## Graded checks

# %% tags=["graded"]
# Check 1: on exact power-law data the fit recovers a and alpha, even from two points
for n in (2, 6):
    a, alpha = random_law()
    C = np.logspace(13, 17, n) * rng.uniform(1, 3)
    got_a, got_alpha = fit_power_law(C, a * C ** -alpha)
    assert np.isclose(got_alpha, alpha, rtol=1e-6), f"data made with L = {a:.3f} * C^-{alpha:.4f} ({n} points): you fitted alpha = {got_alpha:.4g}"
    assert np.isclose(got_a, a, rtol=1e-4), f"data made with L = {a:.3f} * C^-{alpha:.4f} ({n} points): you fitted a = {got_a:.4g}"

# %% tags=["graded"]
# Check 2: on noisy data it is the least-squares line in log-log space
a, alpha = random_law()
C = np.logspace(12, 16, 8)
L = a * C ** -alpha * np.exp(rng.normal(0, 0.02, size=8))  # 2% multiplicative noise
slope, intercept = np.polyfit(np.log(C), np.log(L), 1)
got_a, got_alpha = fit_power_law(C, L)
assert np.isclose(got_alpha, -slope, rtol=1e-8), f"the least-squares exponent of these points is {-slope:.5f}, you fitted {got_alpha:.5f}"
assert np.isclose(got_a, np.exp(intercept), rtol=1e-6), f"the least-squares prefactor of these points is {np.exp(intercept):.5g}, you fitted {got_a:.5g}"

# %% tags=["graded"]
# Check 3: predict_loss evaluates the law on arrays and numbers
a, alpha = random_law()
C = np.logspace(14, 18, 5)
pred = predict_loss(C, a, alpha)
assert np.shape(pred) == C.shape, f"predict_loss on {C.shape[0]} compute values must give {C.shape[0]} losses, got shape {np.shape(pred)}"
np.testing.assert_allclose(pred, a * C ** -alpha, rtol=1e-12, err_msg=f"predict_loss must give a * C**(-alpha) for a={a:.3f}, alpha={alpha:.4f}")
assert np.isclose(predict_loss(1e15, a, alpha), a * 1e15 ** -alpha, rtol=1e-12), "predict_loss(1e15, a, alpha) must work on a plain number too"

# %% tags=["graded"]
# Check 4: fitted on six small runs, it predicts three bigger held-out runs within 5%
a, alpha = random_law()
C = np.logspace(12, 17, 9)  # 5 orders of magnitude of compute
L = a * C ** -alpha * np.exp(rng.normal(0, 0.005, size=9))  # 0.5% run-to-run noise
fitted = fit_power_law(C[:6], L[:6])
pred = predict_loss(C[6:], *fitted)
rel = np.abs(pred - L[6:]) / L[6:]
assert rel.max() < 0.05, (f"fitted on C <= {C[5]:.0e}, your law predicts {[f'{x:.4g}' for x in pred]} for the held-out runs "
                          f"at C = {C[6]:.0e}..{C[8]:.0e}; they measured {[f'{x:.4g}' for x in L[6:]]} (off by up to {rel.max():.3g} of the loss)")
