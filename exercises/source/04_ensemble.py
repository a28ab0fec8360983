# Source of exercises/04_ensemble.ipynb (student) and exercises/solutions/04_ensemble.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/ensemble.py.

# %% [markdown]
# # Exercise 4: ensemble disagreement (7 points)
#
# **You will be able to** measure what a world model does not know, from how much the members
# of an ensemble disagree, and make a planner wary of imagined futures the members cannot
# agree on.
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
# | 1 | `disagreement(model, obs, action)` | 4 |
# | 2 | `risk_adjusted_returns(rollout, risk)` | 3 |

# %% tags=["setup"]
import torch

import wmkit as wm
from wmkit import grading
from wmkit.models.ensemble import EnsembleWorldModel

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 7/7
### END HIDDEN TESTS

# %% [markdown]
# ## An ensemble, in one call
#
# `EnsembleWorldModel` holds `E` MLP world models ("members") whose weights are stacked, so
# `model(obs, action)` runs all of them at once and returns `(E, B, D + 2)` normalised outputs:
# for each member, the change in observation (`[..., :D]`, in units of the buffer's delta
# std), the reward and the termination logit. Members start from different random weights and
# see different resamples of the data, so they agree where there was data and drift apart
# where there was none.

# %%
env = wm.make_env("CartPole-v1", seed=0)
buffer = wm.collect(env, steps=1_000, seed=0)
ensemble = EnsembleWorldModel.for_env(env, ensemble_size=5, hidden=32, seed=0, device="cpu")
wm.fit(ensemble, buffer, epochs=10, seed=0, progress=False)
batch = buffer.sample(6, torch.Generator().manual_seed(0))
print(tuple(ensemble(batch["obs"], batch["action"]).shape))

# %% [markdown]
# ## Part 1: `disagreement` (4 points)
#
# For each of the `B` (obs, action) pairs: take every member's predicted *normalised* change
# `(E, B, D)`, its standard deviation over the members (the population std:
# `correction=0`), and the mean over the `D` dimensions. Normalised units make every
# dimension count alike, whatever its physical scale. The same signature as
# `EnsembleWorldModel.disagreement`.

# %% tags=["answer"]
def disagreement(model: EnsembleWorldModel, obs: torch.Tensor,
                 action: torch.Tensor) -> torch.Tensor:
    """obs (B, D), action (B,) -> (B,) std over members of the normalised change, mean over D."""
    ### BEGIN SOLUTION
    delta = model(obs, action)[..., : model.obs_dim]  # (E, B, D)
    return delta.std(dim=0, correction=0).mean(dim=-1)
    ### END SOLUTION


# %%
grading.check("04_ensemble", disagreement)

# %% [markdown]
# Where the data were, the members agree; far away (here: the same states with their
# velocities blown up five times, which random play never reaches) they do not.

# %%
with torch.no_grad():
    near = disagreement(ensemble, batch["obs"], batch["action"])
    far_obs = batch["obs"] * torch.tensor([1.0, 5.0, 1.0, 5.0])
    far = disagreement(ensemble, far_obs, batch["action"])
print("seen states  :", near.mean().item())
print("unseen states:", far.mean().item())
assert far.mean() > 2 * near.mean()

# %% [markdown]
# ## Part 2: a planner wary of disagreement (3 points)
#
# An imagined rollout from an ensemble carries `rollout.disagreement`, shape `(N, H)`: how much
# the members disagreed at each imagined step. A cautious planner scores each candidate by
#
# `return - risk * (the disagreement summed over the steps that count)`,
#
# where the steps that count are `rollout.alive` (up to and including the first predicted
# done): after the episode ended, the model's doubts cost nothing. It is
# `RandomShooting.score` for a planner with `risk=...`.

# %% tags=["answer"]
def risk_adjusted_returns(rollout: wm.Rollout, risk: float) -> torch.Tensor:
    """(N,) imagined returns less risk x the summed disagreement of the steps that count."""
    ### BEGIN SOLUTION
    return rollout.returns - risk * (rollout.disagreement * rollout.alive).sum(dim=1)
    ### END SOLUTION


# %%
grading.check("04_ensemble", risk_adjusted_returns)

# %%
start = buffer[0]["obs"]
actions = torch.randint(2, (8, 15), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    rollout = ensemble.imagine(start, actions, wm.cartpole_termination)
planner = wm.RandomShooting(ensemble, horizon=15, candidates=8, risk=1.0)
print("returns      :", rollout.returns.round(decimals=1).tolist())
print("risk-adjusted:", risk_adjusted_returns(rollout, 1.0).round(decimals=1).tolist())
assert torch.allclose(planner.score(rollout), risk_adjusted_returns(rollout, 1.0))

# %% [markdown]
# ## Check your understanding
#
# 1. Why measure the spread of the predicted *change* in normalised units, not of the next
#    observation in raw units?
# 2. Disagreement measures what the model does not know (epistemic uncertainty). Would it grow
#    if CartPole itself were noisy but well covered by data? Why not?
# 3. What does a planner with a very large `risk` do? When is that what you want?
