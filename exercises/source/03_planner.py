# Source of exercises/03_planner.ipynb (student) and exercises/solutions/03_planner.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/planner.py.

# %% [markdown]
# # Exercise 3: from imagined returns to an action (7 points)
#
# **You will be able to** write the decision at the heart of random-shooting MPC: given `N`
# random action sequences and the return the model imagines for each, which action to take
# *now*, and explain why averaging beats picking the single best sequence.
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
# | 1 | `first_action_scores(first_actions, returns, n_actions)` | 4 |
# | 2 | `select_action(actions, returns, n_actions, select)` | 3 |

# %% tags=["setup"]
import torch

import wmkit as wm
from wmkit import grading

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 7/7
### END HIDDEN TESTS

# %% [markdown]
# ## The planner's data
#
# At every real step `wm.RandomShooting` draws `N` random action sequences of `H` steps,
# imagines them all with the model, and gets one return per sequence. Only the *first* action
# of a sequence is ever taken; the rest of the plan is thrown away and planned again next step.

# %%
model = wm.TrueCartPole(device="cpu")  # the true dynamics: a perfect "world model"
start = torch.tensor([0.0, 0.0, 0.05, 0.0])  # the pole leans right
actions = torch.randint(2, (8, 10), generator=torch.Generator().manual_seed(0))
returns = model.imagine(start, actions).returns
print(actions[:, 0].tolist(), returns.tolist())

# %% [markdown]
# ## Part 1: score each first action (4 points)
#
# Score each possible first action by the **mean** return of the candidates that start with
# it. An action no candidate starts with scores `-inf` (it was never evaluated). Do it for
# all actions at once: `index_add_` sums returns per action and `torch.bincount` counts them.

# %% tags=["answer"]
def first_action_scores(first_actions: torch.Tensor, returns: torch.Tensor,
                        n_actions: int) -> torch.Tensor:
    """(N,) first actions (long), (N,) returns -> (n_actions,) mean return per first action."""
    ### BEGIN SOLUTION
    totals = torch.zeros(n_actions, dtype=returns.dtype).index_add_(0, first_actions, returns)
    counts = torch.bincount(first_actions, minlength=n_actions)
    return torch.where(counts > 0, totals / counts.clamp_min(1), float("-inf"))
    ### END SOLUTION


# %%
grading.check("03_planner", first_action_scores)

# %% [markdown]
# ## Part 2: choose the action (3 points)
#
# Two rules, chosen by `select`:
#
# - `"best"`: the first action of the single sequence with the highest return;
# - `"mean"`: the first action with the highest mean return (your `first_action_scores`).
#
# Return a Python `int` (what the environment takes), and raise a `ValueError` that names
# `select` for any other value (a wrong argument should say what it expected).

# %% tags=["answer"]
def select_action(actions: torch.Tensor, returns: torch.Tensor, n_actions: int,
                  select: str = "mean") -> int:
    """Candidate sequences (N, H), their returns (N,) -> the first action to take now."""
    ### BEGIN SOLUTION
    if select == "best":
        return int(actions[returns.argmax(), 0])
    if select == "mean":
        return int(first_action_scores(actions[:, 0], returns, n_actions).argmax())
    raise ValueError(f"select: expected 'mean' or 'best', got {select!r}")
    ### END SOLUTION


# %%
grading.check("03_planner", select_action)

# %% [markdown]
# ## "best" against "mean" on the true dynamics
#
# A tiny planner around your `select_action`, on CartPole's true dynamics, so that only the
# decision rule differs. With random continuations the single best sequence is mostly luck;
# the mean over many sequences averages the luck away.

# %%
def shooting_policy(select: str, seed: int = 0):
    """obs -> action: 100 random sequences of 15 steps, your select_action picks."""
    generator = torch.Generator().manual_seed(seed)

    def act(obs) -> int:
        candidates = torch.randint(2, (100, 15), generator=generator)
        imagined = model.imagine(torch.as_tensor(obs), candidates).returns
        return select_action(candidates, imagined, 2, select)

    return act


env = wm.make_env("CartPole-v1", seed=0, max_episode_steps=200)
for select in ("best", "mean"):
    result = wm.evaluate(env, shooting_policy(select), episodes=1, seed=1)
    print(f"{select:>4}: return {result.returns[0]:.0f} of 200")

# The library's planner with your scores as a drop-in:
class MyShooting(wm.RandomShooting):
    def first_action_scores(self, first_actions, returns):
        return first_action_scores(first_actions, returns, self.action_spec.n)


result = wm.evaluate(env, MyShooting(model, horizon=15, candidates=100), episodes=1, seed=1)
print(f"RandomShooting with your scores: {result.returns[0]:.0f} of 200")
assert result.returns[0] >= 150

# %% [markdown]
# ## Check your understanding
#
# 1. Why is the return of the single best random sequence an over-optimistic estimate of how
#    good its first action is?
# 2. With 2 actions and 100 candidates, about how many candidates does each mean average?
#    What happens to "mean" with 10 actions and 20 candidates?
# 3. Why does the planner throw away the rest of the plan and plan again at every step?
