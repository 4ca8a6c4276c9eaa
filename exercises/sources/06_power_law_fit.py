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
# After each part, run its `check(...)` cell: it prints `pass` for each check, or what is wrong. Stuck? Open
# the hints under it one at a time. Grade it: `python -m minilm grade exercises/06_power_law_fit.ipynb`.

# %%
import numpy as np

from minilm.course.checks import ExerciseChecks

check = ExerciseChecks("06_power_law_fit", globals())

# %% [markdown]
# ## Part 1: the fit

# %%
def fit_power_law(C, L):
    """Least squares in log-log space. C, L: (n,) -> (a, alpha) with L ≈ a * C**(-alpha)"""
    ### BEGIN SOLUTION
    slope, intercept = np.polyfit(np.log(C), np.log(L), 1)  # log L = intercept + slope * log C
    return float(np.exp(intercept)), float(-slope)
    ### END SOLUTION


# %%
check("fit_power_law")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# Compute is huge (`1e15` FLOPs and more): never fit on the raw numbers. Take logarithms of both `C` and
# `L` and fit a straight line to them.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `np.polyfit(x, y, 1)` returns `[slope, intercept]` of the least-squares line. Use the same logarithm on
# both axes (natural `np.log` is simplest).
#
# </details>
# <details><summary>Hint 3</summary>
#
# The slope is $-\alpha$ and the intercept is $\log a$, not $a$: return `np.exp(intercept)` and `-slope`,
# as plain floats.
#
# </details>
#
# Still stuck? `solutions/06_power_law_fit.ipynb` holds a worked solution.

# %% [markdown]
# ## Part 2: the prediction

# %%
def predict_loss(C, a, alpha):
    """The power law's loss at compute C (a number or an array)."""
    ### BEGIN SOLUTION
    return a * np.asarray(C, dtype=np.float64) ** (-alpha)
    ### END SOLUTION


# %%
check("predict_loss")

# %% [markdown]
# <details><summary>Hint 1</summary>
#
# It is the law itself, $a \cdot C^{-\alpha}$, evaluated elementwise.
#
# </details>
# <details><summary>Hint 2</summary>
#
# `np.asarray(C, dtype=np.float64)` turns a number or a list into an array (and avoids integer powers),
# then `a * C ** (-alpha)`.
#
# </details>
#
# Still stuck? `solutions/06_power_law_fit.ipynb` holds a worked solution.

# %% [markdown]
# ## Graded checks
#
# The same checks as the `check(...)` cells above; here a failing one stops with what is wrong. Every check
# uses fixed inputs, so your grade is the same on every run.

# %% tags=["graded"]
# Check 1: on exact power-law data the fit recovers a and alpha, even from two points
check.graded("exact_law")

# %% tags=["graded"]
# Check 2: on noisy data it is the least-squares line in log-log space
check.graded("least_squares")

# %% tags=["graded"]
# Check 3: predict_loss evaluates the law on arrays and numbers
check.graded("predict")

# %% tags=["graded"]
# Check 4: fitted on six small runs, it predicts three bigger held-out runs within 5%
check.graded("extrapolation")
