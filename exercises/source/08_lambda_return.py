# Source of exercises/08_lambda_return.ipynb (student) and
# exercises/solutions/08_lambda_return.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/lambda_return.py.

# %% [markdown]
# # Exercise 8: the λ-return (8 points)
#
# **You will be able to** compute the target a Dreamer-style critic learns from, and the
# quantity its actor makes larger: the λ-return of an imagined trajectory, with the learned
# reward, the learned chance that the episode goes on, and the critic's own values beyond the
# horizon (notebook 10).
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
# | 1 | `lambda_returns(rewards, values, continues, discount, lam)` | 8 |

# %% tags=["setup"]
import torch

import wmkit as wm
from wmkit import grading
from wmkit.agents import ActorCritic, continue_probabilities

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 8/8
### END HIDDEN TESTS

# %% [markdown]
# ## What a dream is worth
#
# An imagined trajectory visits states $s_0, \dots, s_H$. Step $t$ (from $s_t$ to $s_{t+1}$)
# pays the learned reward $r_t$, and the termination head says how likely the episode goes on
# after it, $c_t \in [0, 1]$. The critic values every imagined state, $v_t = v(s_t)$; the last
# one, $v_H$, stands for everything beyond the horizon.
#
# The **λ-return** mixes the one-step target (trust the critic) and the whole dream (trust
# the rewards), recursively from the end:
#
# $$R_t = r_t + \gamma\, c_t \big[(1-\lambda)\, v_{t+1} + \lambda\, R_{t+1}\big],
#   \qquad R_H = v_H.$$
#
# - $\lambda = 0$: $R_t = r_t + \gamma c_t v_{t+1}$, the one-step TD target;
# - $\lambda = 1$: $R_t = r_t + \gamma c_t r_{t+1} + \gamma^2 c_t c_{t+1} r_{t+2} + \dots$
#   plus the discounted $v_H$: every imagined reward.
#
# A step with $c_t = 0$ ends the dream: nothing after it counts.

# %% [markdown]
# ## Part 1: `lambda_returns` (8 points)
#
# Shapes: `rewards` (N, H), `values` (N, H+1), `continues` (N, H) -> returns (N, H), the
# returns $R_0 \dots R_{H-1}$ of N dreams at once (batched over N; a loop over the H steps is
# fine, it has to run backwards). Keep it differentiable: the actor's gradient may flow
# through the returns, so never write into the inputs in place; collecting the $R_t$ in a
# list and `torch.stack`-ing them is the simplest way.

# %% tags=["answer"]
def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor,
                   discount: float, lam: float) -> torch.Tensor:
    """R_t = r_t + discount * c_t * ((1 - lam) * v_{t+1} + lam * R_{t+1}), R_H = v_H.

    rewards (N, H), values (N, H+1), continues (N, H) -> (N, H).
    """
    ### BEGIN SOLUTION
    returns = []
    following = values[:, -1]
    for t in range(rewards.shape[1] - 1, -1, -1):
        mixed = (1 - lam) * values[:, t + 1] + lam * following
        following = rewards[:, t] + discount * continues[:, t] * mixed
        returns.insert(0, following)
    return torch.stack(returns, dim=1)
    ### END SOLUTION


# %%
grading.check("08_lambda_return", lambda_returns)

# %% [markdown]
# ## λ at work: an untrained critic
#
# A dream of 50 steps paying 1 each, never ending, discount 0.99, and a critic that knows
# nothing yet (all zeros). The true worth of $s_0$ is about $\sum_{k<50} 0.99^k \approx 39.5$
# (plus whatever lies beyond). The one-step target only sees one reward; the larger λ, the
# more the dream's own rewards teach the critic.

# %%
horizon = 50
rewards = torch.ones(1, horizon)
continues = torch.ones(1, horizon)
untrained = torch.zeros(1, horizon + 1)
for lam in (0.0, 0.5, 0.9, 0.95, 1.0):
    start = lambda_returns(rewards, untrained, continues, 0.99, lam)[0, 0].item()
    print(f"lam = {lam:4.2f}: R_0 = {start:5.2f}")
assert lambda_returns(rewards, untrained, continues, 0.99, 0.0)[0, 0].item() == 1.0
assert abs(lambda_returns(rewards, untrained, continues, 0.99, 1.0)[0, 0].item()
           - sum(0.99**k for k in range(horizon))) < 1e-3

# %% [markdown]
# ## Your function as the agent's
#
# `wm.ActorCritic` scores its dreams with the library's λ-return. Here it dreams 15 steps from
# 8 real CartPole states on a briefly trained world model; your function, given the same
# rewards, the slow critic's values and the calibrated continuations, gives the same returns.

# %%
env = wm.make_env("CartPole-v1", seed=0)
buffer = wm.collect(env, steps=300, seed=0)
wm.seed_everything(0)
model = wm.MLPWorldModel.for_env(env, hidden=32, device="cpu")
wm.fit(model, buffer, epochs=3, progress=False)
agent = ActorCritic(model, progress=False)
agent.done_weight = wm.done_weight(buffer)
dream = agent.dream(buffer, torch.arange(0, 300, 40), horizon=15)
with torch.no_grad():
    values = agent.target_critic(dream.features).squeeze(-1)
continues = continue_probabilities(dream.done_logits, agent.done_weight)
mine = lambda_returns(dream.rewards, values, continues, agent.discount, agent.lam)
print("R_0 of each dream:", mine[:, 0].numpy().round(2))
assert torch.allclose(mine, agent.score(dream).returns, atol=1e-5)

# %% [markdown]
# ## Check your understanding
#
# 1. The critic is trained towards $R_t$, and $R_t$ contains the critic's own values. Why
#    does Dreamer compute them with a slow copy of the critic?
# 2. With $\lambda = 1$ and a horizon of 15, what does $v_{15}$ still contribute, and what
#    would the agent believe about CartPole if it were always 0?
# 3. A termination head that says $c_t = 0.5$ at every step: how far ahead can the λ-return
#    "see", roughly, whatever the horizon? What does that mean for a pole that falls late?
