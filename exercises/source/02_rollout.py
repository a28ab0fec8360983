# Source of exercises/02_rollout.ipynb (student) and exercises/solutions/02_rollout.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/rollout.py.

# %% [markdown]
# # Exercise 2: imagining forward, and stopping at the end (9 points)
#
# **You will be able to** roll a learned world model forward under a batch of action
# sequences ("open loop": no real observation comes back), and make an imagined episode end
# when the model says it ends, so that a planner never collects reward from beyond the grave.
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
# | 1 | `alive_before(dones)` | 3 |
# | 2 | `imagine(model, state, actions, termination_fn=None)` | 6 |

# %% tags=["setup"]
import torch

import wmkit as wm
from wmkit import grading

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 9/9
### END HIDDEN TESTS

# %% [markdown]
# ## Part 1: which imagined steps count (3 points)
#
# An imagined rollout of `N` candidates over `H` steps gives `dones`, an `(N, H)` bool tensor:
# `dones[i, t]` says the model predicts that candidate `i`'s episode ends *at* step `t`.
# Gymnasium pays CartPole's reward on the terminating step itself, and nothing after it. So
# step `t` counts when no done happened at any step *before* `t`:
#
# ```
# dones        F F T F T
# alive_before T T T F F
# ```
#
# Write it without a Python loop: a cumulative sum over time does it (`torch.cumsum`).

# %% tags=["answer"]
def alive_before(dones: torch.Tensor) -> torch.Tensor:
    """(N, H) bool dones -> (N, H) bool: step t counts if no done at steps < t."""
    ### BEGIN SOLUTION
    dones_so_far = torch.cumsum(dones.int(), dim=1)  # dones at steps <= t
    return dones_so_far - dones.int() == 0  # none strictly before t
    ### END SOLUTION


# %%
grading.check("02_rollout", alive_before)

# %% [markdown]
# ## Part 2: `imagine` (6 points)
#
# `model.predict(obs, action)` takes a batch of observations `(N, D)` and actions `(N,)` and
# returns the predicted next observations `(N, D)`, rewards `(N,)` and termination logits
# `(N,)`. Roll it forward from `state` (shape `(D,)`: every candidate starts there) under
# `actions` of shape `(N, H)`, **one call per step for all N candidates at once** (a Python loop
# over time is fine; one over candidates is not), and return
# `wm.Rollout(observations, actions, rewards, dones)`:
#
# - `observations`: `(N, H + 1, D)`, the start first;
# - `dones`: `(N, H)` bool, the logit `> 0`, unless a known rule `termination_fn` is given:
#   then `termination_fn(observations[:, 1:])` replaces the learned head;
# - `rewards`: `(N, H)`, the predicted rewards, times zero after the first done.
#
# It is `MLPWorldModel.imagine` written as a function, so it also works as a drop-in.

# %% tags=["answer"]
def imagine(model: wm.MLPWorldModel, state: torch.Tensor, actions: torch.Tensor,
            termination_fn: wm.models.TerminationFn | None = None) -> wm.Rollout:
    """Roll N action sequences (N, H) forward from `state` (D,) with one model call per step."""
    ### BEGIN SOLUTION
    n, horizon = actions.shape[:2]
    obs = state.expand(n, model.obs_dim)
    observations, rewards, logits = [obs], [], []
    for t in range(horizon):
        obs, reward, logit = model.predict(obs, actions[:, t])
        observations.append(obs)
        rewards.append(reward)
        logits.append(logit)
    observations_t = torch.stack(observations, dim=1)
    if termination_fn is None:
        dones = torch.stack(logits, dim=1) > 0
    else:
        dones = termination_fn(observations_t[:, 1:])
    rewards_t = torch.stack(rewards, dim=1) * alive_before(dones)
    return wm.Rollout(observations_t, actions, rewards_t, dones)
    ### END SOLUTION


# %%
grading.check("02_rollout", imagine)

# %% [markdown]
# ## Imagination against reality
#
# Train a small model on random play, then imagine a few random action sequences from a real
# start with your `imagine`, and compare with CartPole's true dynamics (`wm.TrueCartPole`)
# under the same actions. Imagined returns are rewards *until the predicted end*.

# %%
env = wm.make_env("CartPole-v1", seed=0)
buffer = wm.collect(env, steps=1_000, seed=0)
model = wm.MLPWorldModel.for_env(env, hidden=64, device="cpu")
wm.fit(model, buffer, epochs=15, seed=0, progress=False)

start = buffer[0]["obs"]
actions = torch.randint(2, (6, 30), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    dreamed = imagine(model, start, actions, wm.cartpole_termination)
truth = wm.TrueCartPole(device="cpu").imagine(start, actions)
print("imagined returns:", dreamed.returns.round().tolist())
print("true returns    :", truth.returns.tolist())
assert (dreamed.rewards[~dreamed.alive] == 0).all()  # nothing counts after a predicted end

# %% [markdown]
# ## Check your understanding
#
# 1. Why does the terminating step itself still count, but not the steps after it?
# 2. The imagined and the true returns above differ most for long episodes. Why do one-step
#    errors matter more the further the model imagines?
# 3. What would a planner learn to prefer if rewards after a predicted done were *not* zeroed?
