# Source of exercises/05_dyna.ipynb (student) and exercises/solutions/05_dyna.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/dyna.py.

# %% [markdown]
# # Exercise 5: one Dyna update (7 points)
#
# **You will be able to** write the value update that Dyna feeds with both real and imagined
# transitions: a Double-DQN step with a slowly moving target network, and say why each piece
# is there.
#
# **How it works.** Fill in the cell marked `# YOUR CODE HERE` (and delete the
# `raise NotImplementedError`). The cell after it runs the grader's own checks on fresh random
# inputs and shows your points. Keep the function's name and signature, and put everything it
# needs *inside its answer cell*: the grader runs only the setup cell and the answer cells, in
# a fresh kernel, with a time limit.
# Write the code yourself: a function that calls the library's own version scores nothing.
#
# | part | function | points |
# |---|---|---|
# | 1 | `dyna_update(agent, batch)` | 7 |

# %% tags=["setup"]
import torch
import torch.nn.functional as F

import wmkit as wm
from wmkit import grading
from wmkit.planners.dyna import Dyna

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 7/7
### END HIDDEN TESTS

# %% [markdown]
# ## Dyna in one paragraph
#
# Every real step feeds two learners: the world model, and a Q-network. Then the model
# imagines short branches from real states and hands the Q-network `k` extra minibatches of
# imagined transitions. Both kinds go through the **same update**, the one you write here.
# An agent has what the update needs:
#
# - `agent.q`: the online Q-network, observations `(B, D)` -> Q-values `(B, n_actions)`;
# - `agent.target`: a slowly moving copy of it, used for the targets;
# - `agent.optimizer` (Adam over `agent.q`), `agent.gamma` (discount), `agent.target_tau`.
#
# A minibatch has `obs (B, D)`, `action (B,)`, `reward (B,)`, `next_obs (B, D)` and
# `terminated (B,)`: bools for real data, *probabilities* in [0, 1] for imagined data.

# %%
env = wm.make_env("CartPole-v1", seed=0)
buffer = wm.collect(env, steps=1_000, seed=0)
agent = Dyna.for_env(env, hidden=64, batch_size=64, seed=0, device="cpu")
batch = buffer.sample(4, torch.Generator().manual_seed(0))
print(agent.q(batch["obs"]))
print("Huber (smooth L1) of errors 0.5 and 3:",
      F.smooth_l1_loss(torch.tensor([0.5, 3.0]), torch.zeros(2), reduction="none").tolist())

# %% [markdown]
# ## Part 1: `dyna_update` (7 points)
#
# 1. `value = Q(obs)[action]`, from the online net (with gradient).
# 2. The **Double-DQN target**, without gradient: the *online* net picks the next action
#    `a* = argmax Q(next_obs)`, the *target* net values it:
#    `target = reward + gamma * (1 - terminated) * Q_target(next_obs)[a*]`.
#    (One net doing both overestimates: the max of noisy estimates is biased up, and imagined
#    data make the noise worse.) Only termination stops bootstrapping.
# 3. **Clip the target** to the range a return can have: with rewards at most `max|r|` in
#    size, no discounted return exceeds `max|r| / (1 - gamma)`. Use
#    `target = agent.clip_target(target, batch["reward"])`: it keeps the running `max|r|` over
#    every minibatch the agent has seen and clamps to `[-bound, bound]`. Why bother? Imagined
#    next states are bootstrapped *from* but never trained *on*, so nothing pulls their values
#    back down: they drift up, and every target built on them follows (measured on CartPole:
#    Q around 1,000-2,000 with `k = 20`, where 100 is the most the task pays). Real data
#    rarely hit the bound; the clip is a guard rail for imagined data.
# 4. `loss = F.smooth_l1_loss(value, target)` (Huber: a wild imagined target moves the net by
#    a bounded step), then one optimiser step: zero the gradients, backward, step.
# 5. Move the target net a little toward the online net:
#    `target <- target + target_tau * (online - target)`, parameter by parameter
#    (`torch.lerp` or `Tensor.lerp_` do it), without gradient.
# 6. Return the loss as a Python float (`loss.item()`).
#
# The same signature as `Dyna.update`, so it drops in below.

# %% tags=["answer"]
def dyna_update(agent: Dyna, batch: dict[str, torch.Tensor]) -> float:
    """One Double-DQN gradient step on a minibatch; returns the loss before the step."""
    ### BEGIN SOLUTION
    q_values = agent.q(batch["obs"])
    value = q_values.gather(1, batch["action"].long().unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        next_action = agent.q(batch["next_obs"]).argmax(dim=1, keepdim=True)
        next_value = agent.target(batch["next_obs"]).gather(1, next_action).squeeze(1)
        alive = 1.0 - batch["terminated"].float()
        target = batch["reward"] + agent.gamma * alive * next_value
        target = agent.clip_target(target, batch["reward"])
    loss = F.smooth_l1_loss(value, target)
    agent.optimizer.zero_grad()
    loss.backward()
    agent.optimizer.step()
    with torch.no_grad():
        for target_param, param in zip(agent.target.parameters(), agent.q.parameters(),
                                       strict=True):
            target_param.lerp_(param, agent.target_tau)
    return loss.item()
    ### END SOLUTION


# %%
grading.check("05_dyna", dyna_update)

# %% [markdown]
# ## Your update as a drop-in
#
# An agent whose `update` *is* your function. A few hundred updates on random CartPole data
# (reward 1 a step) already lift the Q-values: the net learns that staying alive pays.

# %%
class MyDyna(Dyna):
    update = dyna_update  # your function becomes the method: `self` is `agent`


my_agent = MyDyna.for_env(env, hidden=64, batch_size=64, seed=0, device="cpu")
generator = torch.Generator().manual_seed(0)
states = buffer.tensors()["obs"]
before = my_agent.q_values(states).max(1).values.mean().item()
losses = [my_agent.update(buffer.sample(64, generator)) for _ in range(300)]
after = my_agent.q_values(states).max(1).values.mean().item()
print(f"mean max Q: {before:.2f} -> {after:.2f}; last loss {losses[-1]:.4f}")
assert after > before + 1

# %% [markdown]
# ## Check your understanding
#
# 1. Why does only `terminated`, not `truncated` (the 500-step time limit), stop
#    bootstrapping?
# 2. An imagined transition has `terminated = 0.3`. What does the target mean then?
# 3. Why would plain DQN's target (`max` over the target net) suffer more from imagined data
#    than Double DQN's?
# 4. CartPole pays +1 a step and `gamma = 0.99`. What is the clip's bound, and what does a
#    Q-value of 1,500 tell you about where the targets came from?
