# Source of exercises/01_model_loss.ipynb (student) and exercises/solutions/01_model_loss.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/model_loss.py.

# %% [markdown]
# # Exercise 1: the one-step loss of a world model (8 points)
#
# **You will be able to** write the loss that teaches an MLP world model CartPole's physics:
# what the network predicts, in which units, and why the termination term needs a weight.
#
# **How it works.** Fill in the cells marked `# YOUR CODE HERE` (and delete the
# `raise NotImplementedError`). The cell after each answer runs the grader's own checks on
# fresh random inputs and shows your points; run it as often as you like. Keep the function's
# name and signature, and put everything your function needs *inside its answer cell*: the
# grader runs only the setup cell and the answer cells, in a fresh kernel, with a time limit.
# Write the code yourself: a function that calls the library's own version scores nothing.
#
# | part | function | points |
# |---|---|---|
# | 1 | `one_step_loss(model, batch, done_weight)` | 8 |

# %% tags=["setup"]
import torch
import torch.nn.functional as F

import wmkit as wm
from wmkit import grading

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 8/8
### END HIDDEN TESTS

# %% [markdown]
# ## What the model predicts
#
# `wm.MLPWorldModel` is one network. From an observation and an action it predicts three
# things at once, all in *normalised* units (zero mean, unit spread over the replay buffer):
#
# - the **change** in observation, `next_obs - obs` (predicting the change makes "nothing
#   moves" the easy default), normalised with `model.delta_mean` and `model.delta_std`;
# - the **reward**, normalised with `model.reward_mean` and `model.reward_std`;
# - a **termination logit**: `> 0` means "the episode ends here".
#
# `model(obs, action)` returns them side by side, shape `(B, D + 2)` for `D`-dimensional
# observations: columns `[:D]` are the change, column `D` the reward, column `D + 1` the logit.

# %%
env = wm.make_env("CartPole-v1", seed=0)
buffer = wm.collect(env, steps=1_000, seed=0)
model = wm.MLPWorldModel.for_env(env, hidden=64, device="cpu")
model.set_normalizer(buffer.stats())  # `wm.fit` does this before training
batch = buffer.sample(8, torch.Generator().manual_seed(0))
out = model(batch["obs"], batch["action"])
print({key: tuple(value.shape) for key, value in batch.items()}, "->", tuple(out.shape))

# %% [markdown]
# ## Three losses, one per head
#
# - **delta**: mean squared error between the predicted and the true *normalised* change.
# - **reward**: Huber loss (`F.huber_loss`) between the predicted and the true normalised
#   reward: quadratic for small errors, linear for large ones, so one odd reward does not
#   dominate the gradient.
# - **done**: binary cross-entropy on the logit (`F.binary_cross_entropy_with_logits`) against
#   `batch["terminated"]` as floats. A random CartPole episode ends about one step in twenty,
#   so "never ends" is right 95% of the time: `pos_weight=torch.tensor(done_weight)` makes
#   each termination count `done_weight` times (`wm.done_weight(buffer)` picks it).
# - **total**: their plain sum, the number the optimiser minimises.

# %%
errors = torch.tensor([0.1, 1.0, 10.0])
print("squared error:", F.mse_loss(errors, torch.zeros(3), reduction="none"))
print("Huber        :", F.huber_loss(errors, torch.zeros(3), reduction="none"))
print("done_weight for this buffer:", round(wm.done_weight(buffer), 1))

# %% [markdown]
# ## Part 1: `one_step_loss` (8 points)
#
# The same signature as `MLPWorldModel.loss`, so your function can replace it (below).

# %% tags=["answer"]
def one_step_loss(model: wm.MLPWorldModel, batch: dict[str, torch.Tensor],
                  done_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Loss components on a batch of B real transitions, all in normalised units.

    batch: "obs" (B, D), "action" (B,) or (B, A), "reward" (B,), "next_obs" (B, D),
    "terminated" (B,) bool. Returns scalar tensors {"delta", "reward", "done", "total"}.
    """
    ### BEGIN SOLUTION
    out = model(batch["obs"], batch["action"])
    d = model.obs_dim
    target_delta = (batch["next_obs"] - batch["obs"] - model.delta_mean) / model.delta_std
    target_reward = (batch["reward"] - model.reward_mean) / model.reward_std
    losses = {
        "delta": F.mse_loss(out[:, :d], target_delta),
        "reward": F.huber_loss(out[:, d], target_reward),
        "done": F.binary_cross_entropy_with_logits(
            out[:, d + 1], batch["terminated"].float(),
            pos_weight=torch.tensor(done_weight, device=out.device)),
    }
    losses["total"] = losses["delta"] + losses["reward"] + losses["done"]
    return losses
    ### END SOLUTION


# %%
grading.check("01_model_loss", one_step_loss)

# %% [markdown]
# ## Your loss as a drop-in
#
# A subclass whose `loss` *is* your function trains with `wm.fit` like the library's model.
# After a few epochs its one-step predictions should beat "nothing changes" by a wide margin.

# %%
class MyModel(wm.MLPWorldModel):
    loss = one_step_loss  # your function becomes the method: `self` is `model`


my_model = MyModel.for_env(env, hidden=64, device="cpu")
wm.fit(my_model, buffer, epochs=40, seed=0, progress=False)
error = wm.one_step_error(my_model, buffer)
print(error)
assert error["model"] < error["no_change"] / 5, "the model learned little: check your loss"

# %% [markdown]
# ## Check your understanding
#
# 1. Why predict the normalised *change* rather than the next observation itself?
# 2. What goes wrong if `done_weight` is left at 1 on random CartPole data? What if it is 1,000?
# 3. Would the MSE or the Huber loss suit the reward better if rewards were noisy and rare?
