# Source of exercises/07_cem_update.ipynb (student) and exercises/solutions/07_cem_update.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/cem_update.py.

# %% [markdown]
# # Exercise 7: the CEM update, from elites to a new distribution (8 points)
#
# **You will be able to** write the step that makes the cross-entropy method (CEM) smarter
# than random shooting: after imagining a population of action sequences, keep the best ones
# (the *elites*) and fit the next sampling distribution to them, so that the next population
# is drawn where the good plans were.
#
# **How it works.** Fill in the cells marked `# YOUR CODE HERE` (and delete the
# `raise NotImplementedError`). The cell after each answer runs the grader's own checks on
# fresh random inputs and shows your points. Keep the functions' names and signatures, and put
# everything a function needs *inside its answer cell*: the grader runs only the setup cell and
# the answer cells, in a fresh kernel, with a time limit.
# Write the code yourself: a function that calls the library's own version scores nothing.
#
# | part | function | points |
# |---|---|---|
# | 1 | `cem_update(candidates, scores, elite_fraction, n_actions)` | 8 |

# %% tags=["setup"]
import numpy as np
import torch

import wmkit as wm
from wmkit import grading
from wmkit.models.true_pendulum import TruePendulum
from wmkit.planners.cem import Categorical, Gaussian

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 8/8
### END HIDDEN TESTS

# %% [markdown]
# ## One CEM iteration, by hand
#
# `wm.CEM` plans like random shooting, but in rounds. Each round samples `N` action sequences
# of `H` steps from a distribution, imagines them all in one batched call, and scores them by
# their imagined return. Here is one round on Pendulum's true dynamics, from a pendulum
# hanging down: 200 torque sequences of 20 steps, each step drawn from a Gaussian around 0
# and clipped to the motor's limits, [-2, 2].

# %%
pendulum = TruePendulum(device="cpu")
hanging = pendulum.filter(None, None, [np.cos(2.8), np.sin(2.8), 0.0])
generator = torch.Generator().manual_seed(0)
candidates = (2.0 * torch.randn(200, 20, 1, generator=generator)).clamp(-2, 2)  # (N, H, A)
scores = pendulum.imagine(hanging, candidates).returns  # (N,)
print(f"candidates {tuple(candidates.shape)}, scores {tuple(scores.shape)}: "
      f"best {scores.max():.1f}, mean {scores.mean():.1f}, worst {scores.min():.1f}")

# %% [markdown]
# ## The update (8 points)
#
# Write `cem_update(candidates, scores, elite_fraction, n_actions=None)`:
#
# 1. the elites are the `K = max(1, round(elite_fraction * N))` candidates with the highest
#    scores (compute `K` yourself; `scores.topk(K)` finds them);
# 2. **Box actions** (`candidates` float, `(N, H, A)`): return `Gaussian(mean, std)`, the
#    elites' mean and standard deviation over the population axis, each `(H, A)`: one
#    Gaussian per step and action dimension. Use the *population* std (`correction=0`): with
#    one elite it is 0, not NaN;
# 3. **Discrete actions** (`candidates` long, `(N, H)`, actions `0..n_actions-1`): return
#    `Categorical(probs)`, `probs` `(H, n_actions)` float: at each step, the share of the
#    elites taking each action (`torch.nn.functional.one_hot` helps);
# 4. `scores` that are not one per candidate, `(N,)`, raise a `ValueError` naming `scores`.
#
# No Python loop over candidates: a few tensor operations do it all.

# %% tags=["answer"]
def cem_update(candidates: torch.Tensor, scores: torch.Tensor, elite_fraction: float,
               n_actions: int | None = None) -> Gaussian | Categorical:
    """Candidates (N, H, A) float or (N, H) long, scores (N,) -> the elites' distribution."""
    ### BEGIN SOLUTION
    if scores.dim() != 1 or len(scores) != len(candidates):
        raise ValueError(f"scores: expected one per candidate, shape ({len(candidates)},), "
                         f"got {tuple(scores.shape)}")
    k = max(1, round(elite_fraction * len(scores)))
    elites = candidates[scores.topk(k).indices]
    if candidates.is_floating_point():
        return Gaussian(elites.mean(dim=0), elites.std(dim=0, correction=0))
    counts = torch.nn.functional.one_hot(elites, n_actions).float()  # (K, H, n_actions)
    return Categorical(counts.mean(dim=0))
    ### END SOLUTION


# %%
grading.check("07_cem_update", cem_update)

# %% [markdown]
# ## The distribution after one update
#
# The elites are the 10% best of the 200 sequences above. From a blind start one round says
# little: their Gaussian is only a little narrower than the samples they came from. CEM's
# strength is repetition: sample from the refit, imagine, refit again (below).

# %%
refit = cem_update(candidates, scores, 0.1)
print("elites' mean torque, steps 0-9:", np.round(refit.mean[:10, 0].tolist(), 2))
print(f"elites' std, averaged over the steps: {refit.std.mean():.2f} (the samples': "
      f"{candidates.std(0).mean():.2f})")
assert refit.std.mean() < candidates.std(0).mean()

# %% [markdown]
# ## Your update inside the library's planner
#
# `wm.CEM` calls its refit rule through the class attribute `update`, so a subclass can swap
# in yours. With the same seed it makes exactly the library's decision, and over its 5
# iterations the distribution sharpens around one plan.

# %%
class MyCEM(wm.CEM):
    update = staticmethod(cem_update)


mine = MyCEM(pendulum, budget=2_000, seed=0)
library = wm.CEM(pendulum, budget=2_000, seed=0)
mine.plan(hanging)
library.plan(hanging)
stds = [float(d.std.mean()) for d in mine.distributions]
print("mean std at each iteration:", np.round(stds, 3))
assert torch.allclose(mine.last_plan.sequence, library.last_plan.sequence, atol=1e-5)
assert stds[-1] < stds[0] / 3

env = wm.make_env("Pendulum-v1", seed=0, max_episode_steps=100)
result = wm.evaluate(env, MyCEM(TruePendulum.for_env(env), budget=2_000, seed=0), episodes=1,
                     seed=3)
print(f"one Pendulum episode with your update: return {result.returns[0]:.0f} "
      f"(0 is perfect; left hanging, about -1,000 in 100 steps)")

# %% [markdown]
# ## Check your understanding
#
# 1. Why does the library blend each refit with the previous distribution (`momentum`)
#    instead of replacing it? What goes wrong with 10 candidates and `elite_fraction=0.1`?
# 2. Random shooting's "mean" rule and MPPI weigh *every* candidate; CEM keeps only the
#    elites, each with the same weight. What does each choice throw away?
# 3. On CartPole most 20-step sequences earn the same maximal return. Which elites does
#    `topk` keep then, and what does the refit learn from them?
# 4. The Gaussian is per step and per action dimension, independent across steps. Which
#    plans can it not describe well?
