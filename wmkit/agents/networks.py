"""The two small networks of the actor-critic: an MLP (the critic is one) and the actor's
distribution over actions on top of one (categorical for Discrete, squashed Gaussian for Box).

`actor_critic.py` trains them in the world model's dreams; nothing here knows about models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces import ActionSpec


def mlp(fan_in: int, hidden: int, layers: int, fan_out: int) -> nn.Sequential:
    """Linear-SiLU blocks, then a linear output initialised to zero (DreamerV3's choice for the
    critic; for the actor it means a uniform, or zero-mean, policy at the start).

    DreamerV3 puts a LayerNorm in every block, for stability across many domains; at
    CartPole's sizes it cost ~20% of an update's CPU time, so this small kit leaves it out.
    """
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(fan_in if i == 0 else hidden, hidden), nn.SiLU()]
    out = nn.Linear(hidden, fan_out)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*blocks, out)


class Actor(nn.Module):
    """pi(a | features): a categorical over Discrete actions, or a tanh-squashed Gaussian
    rescaled to a Box's bounds.

    Box: u ~ Normal(mean, std), a = tanh(u) in [-1, 1], then mapped onto [low, high]; the mean
    is kept within +-5 (5 tanh(raw / 5), Dreamer v1) and std in [0.1, 1] (DreamerV3).
    """

    min_std, max_std = 0.1, 1.0

    def __init__(self, features: int, action_spec: ActionSpec, hidden: int, layers: int) -> None:
        super().__init__()
        self.action_spec = action_spec
        outputs = action_spec.n if action_spec.discrete else 2 * action_spec.n
        self.net = mlp(features, hidden, layers, outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., F) -> (..., n) logits (Discrete) or (..., 2A) [mean, std] of u (Box)."""
        raw = features
        # The layers' functions, called directly: for a batch of one (a real decision) the
        # modules' call machinery costs more than their arithmetic (~40% of a decision).
        for layer in self.net:
            raw = F.linear(raw, layer.weight, layer.bias) if isinstance(layer, nn.Linear) \
                else F.silu(raw)
        if self.action_spec.discrete:
            return raw
        mean, std = raw.chunk(2, dim=-1)
        std = self.min_std + (self.max_std - self.min_std) * torch.sigmoid(std + 2.0)
        return torch.cat([5 * torch.tanh(mean / 5), std], dim=-1)

    def sample(self, features: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(N, F) -> actions (N,) long or (N, A) in env units. Box samples are
        reparameterised: gradients flow from the action back into the actor."""
        params = self(features)
        if self.action_spec.discrete:
            # Inverse-CDF sampling: one uniform per row (cheaper than multinomial for few
            # actions; the clamp keeps a rounding-short cumsum from giving action n).
            uniform = torch.rand((*params.shape[:-1], 1), generator=generator,
                                 device=params.device)
            cdf = F.softmax(params, -1).cumsum(-1)
            return (cdf < uniform).sum(-1).clamp_max(self.action_spec.n - 1)
        mean, std = params.chunk(2, dim=-1)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return self._to_env(torch.tanh(mean + std * noise))

    def mode(self, features: torch.Tensor) -> torch.Tensor:
        """(N, F) -> the most likely actions (N,) long or (N, A): argmax, or tanh(mean)."""
        params = self(features)
        if self.action_spec.discrete:
            return params.argmax(-1)
        return self._to_env(torch.tanh(params.chunk(2, dim=-1)[0]))

    def log_prob_entropy(self, features: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., F) and actions (...) long or (..., A) -> log pi(a) (...), entropy (...).

        Box: the entropy is the Gaussian's before the squash (the usual approximation).
        """
        params = self(features)
        if self.action_spec.discrete:
            log_probs = F.log_softmax(params, -1)
            taken = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            return taken, -(log_probs.exp() * log_probs).sum(-1)
        mean, std = params.chunk(2, dim=-1)
        unit = self.action_spec.encode(actions).clamp(-1 + 1e-5, 1 - 1e-5)
        normal = torch.distributions.Normal(mean, std)
        log_prob = normal.log_prob(torch.atanh(unit)) - torch.log1p(-unit.pow(2))
        return log_prob.sum(-1), normal.entropy().sum(-1)

    def _to_env(self, unit: torch.Tensor) -> torch.Tensor:
        low, high = self.action_spec.bounds(unit.device)
        return low + (unit + 1) / 2 * (high - low)
