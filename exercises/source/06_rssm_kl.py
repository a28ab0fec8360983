# Source of exercises/06_rssm_kl.ipynb (student) and exercises/solutions/06_rssm_kl.ipynb.
# Edit this file, then run `python -m wmkit.grading.build` (see docs/INSTRUCTORS.md).
# Checks: wmkit/grading/checks/rssm_kl.py.

# %% [markdown]
# # Exercise 6: the RSSM's KL, balanced, with free bits (9 points)
#
# **You will be able to** write the term that ties an RSSM's imagination to its perception:
# the KL divergence between the posterior (which saw the observation) and the prior (which
# only remembers), split in two so that each side learns at its own pace, and floored by
# "free bits" so the latent keeps some information.
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
# | 1 | `gaussian_kl(posterior, prior)` | 4 |
# | 2 | `kl_losses(posterior, prior, free_nats)` | 5 |

# %% tags=["setup"]
import torch
import torch.nn.functional as F

import wmkit as wm
from wmkit import grading
from wmkit.models.rssm import RSSMWorldModel

torch.set_num_threads(1)
### BEGIN HIDDEN TESTS
grading.require_full_marks()  # the solution notebook fails under nbval unless it scores 9/9
### END HIDDEN TESTS

# %% [markdown]
# ## Posterior and prior
#
# The RSSM's stochastic latent `z` is a diagonal Gaussian of `stoch` numbers, stored as one
# tensor `[mean, std]` of shape `(..., 2 * stoch)`: the first half of the last axis is the
# mean, the second half the standard deviation. The **posterior** `q(z | h, o)` sees the
# observation; the **prior** `p(z | h)` must guess it from memory alone, and it is all that
# imagination has. Training pulls them together with `KL(q || p)`.

# %%
model = RSSMWorldModel(obs_dim=2, action_spec=wm.ActionSpec(True, 2), deter=8, stoch=3,
                       hidden=8, device="cpu")
posterior = torch.tensor([[0.5, -1.0, 0.0, 0.3, 0.5, 1.0]])  # mean (3), std (3)
prior = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
print("mean, std of the posterior:", posterior.chunk(2, dim=-1))

# %% [markdown]
# ## Part 1: `gaussian_kl` (4 points)
#
# For diagonal Gaussians the KL has a closed form, per dimension:
#
# $$\mathrm{KL}(q \,\|\, p) = \log\frac{s_p}{s_q} + \frac{s_q^2 + (m_q - m_p)^2}{2 s_p^2}
#   - \frac12,$$
#
# summed over the `stoch` dimensions: `(..., 2 * stoch)` -> `(...)`. It is
# `RSSMWorldModel.kl` (which uses nothing of the model), written as a function.

# %% tags=["answer"]
def gaussian_kl(posterior: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians [mean, std] (..., 2 * stoch), summed -> (...)."""
    ### BEGIN SOLUTION
    m_q, s_q = posterior.chunk(2, dim=-1)
    m_p, s_p = prior.chunk(2, dim=-1)
    per_dim = torch.log(s_p / s_q) + (s_q**2 + (m_q - m_p) ** 2) / (2 * s_p**2) - 0.5
    return per_dim.sum(dim=-1)
    ### END SOLUTION


# %%
grading.check("06_rssm_kl", gaussian_kl)

# %% [markdown]
# ## Part 2: balanced KL with free bits (5 points)
#
# DreamerV3 splits the KL into two terms with the same value but different gradients
# (`sg` = stop-gradient, `.detach()` in PyTorch):
#
# - `dyn = max(free_nats, KL(sg(q) || p))`: trains the **prior** toward the posterior
#   (weighted 0.5 in the loss);
# - `rep = max(free_nats, KL(q || sg(p)))`: trains the **posterior** toward the prior
#   (weighted 0.1: the posterior must mostly listen to the observation).
#
# Free bits: per element (after summing over the latent dimensions), below `free_nats` the
# term is the constant `free_nats`, so nothing pushes: the posterior keeps that much
# information about the observation for free. `clamp_min` does exactly that.

# %% tags=["answer"]
def kl_losses(posterior: torch.Tensor, prior: torch.Tensor, free_nats: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """[mean, std] (..., 2 * stoch) each -> (dyn, rep), both (...), floored at free_nats."""
    ### BEGIN SOLUTION
    dyn = gaussian_kl(posterior.detach(), prior).clamp_min(free_nats)
    rep = gaussian_kl(posterior, prior.detach()).clamp_min(free_nats)
    return dyn, rep
    ### END SOLUTION


# %%
grading.check("06_rssm_kl", kl_losses)

# %% [markdown]
# ## Free bits at work
#
# A prior learns to match a fixed posterior by minimising `dyn` alone (plain gradient
# descent). The KL falls until the step that takes it just below `free_nats`, and then it
# freezes: below the threshold there is no gradient left.

# %%
raw_prior = torch.zeros(1, 6, requires_grad=True)
optimizer = torch.optim.SGD([raw_prior], lr=0.05)
history = []
for _ in range(100):
    mean, raw_std = raw_prior.chunk(2, dim=-1)
    learned_prior = torch.cat([mean, F.softplus(raw_std) + 0.1], dim=-1)
    dyn, _ = kl_losses(posterior, learned_prior, free_nats=1.0)
    history.append(gaussian_kl(posterior, learned_prior).item())
    optimizer.zero_grad()
    dyn.sum().backward()
    optimizer.step()
print("KL every 10 steps:", [round(kl, 3) for kl in history[::10]])
assert history[0] > 1.5 and 0.9 < history[-1] < 1.0 and history[-1] == history[-30]


# The library's model with your KL as a drop-in gives the same numbers:
class MyRSSM(RSSMWorldModel):
    kl = staticmethod(gaussian_kl)


mine = MyRSSM(obs_dim=2, action_spec=wm.ActionSpec(True, 2), deter=8, stoch=3, hidden=8,
              device="cpu")
assert torch.allclose(mine.kl(posterior, prior), model.kl(posterior, prior))

# %% [markdown]
# ## Check your understanding
#
# 1. KL is not symmetric. Why is it `KL(posterior || prior)` and not the other way round?
# 2. What would the posterior learn if `rep` had the same weight as `dyn`, and no free bits?
# 3. With `free_nats = 1`, how much information (in nats) can each latent keep about its
#    observation "for free"?
