"""An ensemble world model: N MLP members evaluated together; mean prediction + disagreement.

Each member is an `MLPWorldModel`-shaped network (normalised (obs, action) -> change in obs,
reward, termination logit). The members' weights are stacked along a leading "member"
dimension, so every layer is ONE batched matmul (`torch.baddbmm`, as mbrl-lib's ensemble layer
does) instead of a Python loop over members.

Why several members? They agree where they saw data and drift apart where they did not, so
their spread (the *disagreement*) is a cheap measure of what the model does not know
(epistemic uncertainty). Members are made different by

- their initial weights (each member draws its own, from `seed`);
- bootstrapped data: during training each member sees its own resample (with replacement) of
  every minibatch. `fit` hands the same minibatch to the whole model; `loss` resamples it per
  member with a generator seeded at construction. Like mbrl-lib's bootstrap (a new resample per
  member every epoch), the resample changes over time, so across many epochs every member still
  sees all the data; most of the diversity comes from the different initial weights and the
  different resampling noise. `bootstrap=False` trains all members on the same batches.

Optional Gaussian heads (`gaussian=True`, the PETS recipe): each member also predicts a
log-variance of the change in obs, trained by Gaussian negative log-likelihood. The
log-variance is soft-clamped between learned bounds (`soft_clamp_logvar`) with a small penalty
that pulls the bounds together; without the bounds, a member can push a variance to 0 or inf
on a few points and the NLL turns into NaN.

How an imagined trajectory moves through the members (`propagation`):

- "mean" (default): every step, all members predict from the same state and the trajectory
  continues from their mean. Smooth, and the disagreement is measured at that mean state.
- "random_member": candidate i follows member i % N for the whole horizon (PETS calls this
  TS-inf; TS-1 would re-draw the member every step). The candidates are random sequences, so a
  fixed assignment is as good as a random one. All members are still evaluated on every
  candidate's state, to measure the disagreement there; only the member's own prediction is
  followed. Both options are batched: no Python loop over members or candidates.

Speed (benchmarks/ensemble.py, one thread, 500 candidates x 20 steps): the batched members are
as fast as a Python loop over members at the default 2 x 200 (both ~1.0-1.3 x five single MLPs,
depending on machine load) and faster for small members (2 x 64: ~0.8 x vs ~0.9-1.1 x). With
several torch threads on cores that other processes keep busy, small batched matmuls can get
~100 x slower: use `torch.set_num_threads(1)` there (the tests and notebook 04 do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces import ActionSpec
from ..utils import check_positive_int, default_device
from .base import Imagines, ObservedState, observation_state
from .normalised import Normalised

Propagation = Literal["mean", "random_member"]
PROPAGATIONS = ("mean", "random_member")


def soft_clamp_logvar(logvar: torch.Tensor, min_logvar: torch.Tensor, max_logvar: torch.Tensor
                      ) -> torch.Tensor:
    """Squash raw log-variances (..., D) smoothly into (min_logvar, max_logvar) (D,).

    The PETS recipe: first `max - softplus(max - x)` (close to x below max, never above it),
    then `min + softplus(x - min)` (close to x above min, never below it). Unlike a hard clamp,
    the gradient never vanishes, so the bounds themselves can be learned. The second softplus
    can lift the top by at most log(1 + exp(min - max)) (3e-5 for PETS' initial -10 and 0.5).
    """
    logvar = max_logvar - F.softplus(max_logvar - logvar)
    return min_logvar + F.softplus(logvar - min_logvar)


class EnsembleLinear(nn.Module):
    """`members` independent linear layers, applied in one batched matmul.

    weight: (E, fan_in, fan_out); bias: (E, 1, fan_out). Input (E, B, fan_in) -> (E, B, fan_out).
    Each member is initialised like `nn.Linear` (uniform in +-1/sqrt(fan_in)).
    """

    def __init__(self, members: int, fan_in: int, fan_out: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(
            (torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound)
        self.bias = nn.Parameter(
            (torch.rand(members, 1, fan_out, generator=generator) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # bias + x @ weight for every member at once; x may be an expanded (stride-0) view.
        return torch.baddbmm(self.bias, x, self.weight)


@dataclass
class MemberPrediction:
    """What every member predicts for a batch of B (obs, action) pairs (E members).

    next_obs: (E, B, D) raw units; reward: (E, B); done_logit: (E, B);
    delta: (E, B, D) the change in obs in normalised units (what the networks output);
    delta_logvar: (E, B, D) log-variance of `delta` (normalised units), or None without
    Gaussian heads.
    """

    next_obs: torch.Tensor
    reward: torch.Tensor
    done_logit: torch.Tensor
    delta: torch.Tensor
    delta_logvar: torch.Tensor | None = None

    @property
    def disagreement(self) -> torch.Tensor:
        """(B,) std over members of the normalised predicted change, averaged over dims."""
        return _spread(self.delta, self.delta.mean(dim=0))


def _spread(delta: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Members' deltas (E, B, D) and their mean (B, D) -> (B,) std over members, mean over dims.

    Written out: torch.std over a leading dim is several times slower on the CPU.
    """
    return (delta - centre).square().mean(dim=0).sqrt().mean(dim=-1)


class EnsembleWorldModel(ObservedState, Imagines, Normalised, nn.Module):
    """N MLP world models trained and evaluated together (see the module docstring).

    Drops in wherever `MLPWorldModel` does (`fit`, `RandomShooting`, `learn`): `predict` gives
    the members' mean, and `imagine` also fills `Rollout.disagreement` (N, H).

    Args:
        obs_dim, action_spec: as for `MLPWorldModel`.
        ensemble_size: number of members E.
        hidden, layers: width and depth of each member (same defaults as `MLPWorldModel`).
        gaussian: add log-variance heads trained by NLL (see `soft_clamp_logvar`). Setting the
            attribute to False on a trained model makes it ignore the heads (spread only).
        propagation: "mean" or "random_member" (see the module docstring); an attribute, so it
            can be changed after training.
        bootstrap: resample each minibatch per member during training.
        seed: seeds the members' initial weights and the bootstrap; None draws both from
            torch's global generator (so `wm.seed_everything` controls them).
        device: where the weights live; default `wmkit.default_device()`.
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, ensemble_size: int = 5,
                 hidden: int = 200, layers: int = 2, gaussian: bool = False,
                 propagation: Propagation = "mean", bootstrap: bool = True,
                 seed: int | None = None, device: str | torch.device | None = None) -> None:
        super().__init__()
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        if not isinstance(action_spec, ActionSpec):
            raise ValueError(f"action_spec: expected an ActionSpec, got {action_spec!r}")
        self.action_spec = action_spec
        self.ensemble_size = check_positive_int("ensemble_size", ensemble_size)
        self.hidden = check_positive_int("hidden", hidden)
        self.layers = check_positive_int("layers", layers)
        self.propagation = _check_propagation(propagation)
        self.gaussian, self.bootstrap = bool(gaussian), bool(bootstrap)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed: expected an int or None, got {seed!r}")
        init_generator = None if seed is None else torch.Generator().manual_seed(seed)
        bootstrap_seed = (int(torch.randint(2**62, ()).item()) if seed is None else seed + 1)
        # The bootstrap draws live on the CPU: they are a few ints per row, and a CPU generator
        # gives the same resamples whatever the model's device.
        self._bootstrap_generator = torch.Generator().manual_seed(bootstrap_seed)

        out_dim = obs_dim + 2 + (obs_dim if gaussian else 0)
        sizes = [obs_dim + action_spec.encoded_dim] + [hidden] * layers + [out_dim]
        self.net = nn.ModuleList(
            EnsembleLinear(ensemble_size, fan_in, fan_out, init_generator)
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True))
        if gaussian:
            # Bounds in normalised units (the delta targets have std 1): PETS' initial values.
            self.max_logvar = nn.Parameter(torch.full((obs_dim,), 0.5))
            self.min_logvar = nn.Parameter(torch.full((obs_dim,), -10.0))
        self.register_norm_buffers(obs_dim)  # set_normalizer, device, for_env: see Normalised
        self.to(default_device(device))

    # -- the networks ---------------------------------------------------------------------------

    def _inputs(self, obs: torch.Tensor, encoded_action: torch.Tensor) -> torch.Tensor:
        """Raw obs (..., B, D), encoded actions (..., B, A) -> network inputs (..., B, D + A).

        Unlike the kit's other models, the ensemble reads states off the data *unclamped*
        (`standardise`, not `inputs`): that its members then disagree is how it knows it is off
        the data (`risk`, `max_disagreement`); clamped, they would agree there."""
        return torch.cat([self.standardise(obs), encoded_action], dim=-1)

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs (B, D + A) shared by all members, or (E, B, D + A) -> outputs (E, B, out)."""
        if x.dim() == 2:
            x = x.expand(self.ensemble_size, *x.shape)  # a view: no copy per member
        # In place when nothing needs gradients (planning): one (E, B, hidden) buffer less.
        inplace = not torch.is_grad_enabled()
        for layer in self.net[:-1]:
            x = F.silu(layer(x), inplace=inplace)
        return self.net[-1](x)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Raw obs (B, D) or (E, B, D), actions (B[, A]) or (E, B[, A]) -> normalised outputs
        (E, B, D + 2 [+ D]): [delta (D), reward (1), termination logit (1), raw log-var (D)].
        """
        return self._network(self._inputs(obs, self.action_spec.encode(action)))

    def forward_loop(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The same as `forward`, one member at a time (a reference for tests and benchmarks)."""
        return self._network_loop(self._inputs(obs, self.action_spec.encode(action)))

    def _network_loop(self, x: torch.Tensor) -> torch.Tensor:
        """`_network` as a Python loop over members (E small matmuls per layer)."""
        outputs = []
        for member in range(self.ensemble_size):
            h = x if x.dim() == 2 else x[member]
            for i, layer in enumerate(self.net):
                h = torch.addmm(layer.bias[member, 0], h, layer.weight[member])
                h = F.silu(h) if i < len(self.net) - 1 else h
            outputs.append(h)
        return torch.stack(outputs)

    def _logvar(self, raw: torch.Tensor) -> torch.Tensor:
        return soft_clamp_logvar(raw, self.min_logvar, self.max_logvar)

    def predict_members(self, obs: torch.Tensor, action: torch.Tensor) -> MemberPrediction:
        """Raw obs (B, D) or (E, B, D), actions (B[, A]) or (E, B[, A]) -> every member's
        prediction, in raw units (plus the normalised change and its log-variance)."""
        out = self(obs, action)
        d = self.obs_dim
        delta = out[..., :d]
        next_obs = obs + delta * self.delta_std + self.delta_mean
        reward = out[..., d] * self.reward_std + self.reward_mean
        logvar = self._logvar(out[..., d + 2:]) if self.gaussian else None
        return MemberPrediction(next_obs, reward, out[..., d + 1], delta, logvar)

    def predict(self, obs: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw obs (B, D), actions (B[, A]) -> the members' mean next obs (B, D), reward (B,)
        and termination logit (B,) (the mean of the members' logits)."""
        members = self.predict_members(obs, action)
        return (members.next_obs.mean(0), members.reward.mean(0), members.done_logit.mean(0))

    def disagreement(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """(B,) how much the members disagree on the next obs of (obs (B, D), action (B[, A])):
        the std over members of the predicted change, in units of the buffer's delta std,
        averaged over dims. 0 where they agree exactly."""
        return self.predict_members(obs, action).disagreement

    def loss(self, batch: dict[str, torch.Tensor], done_weight: float = 1.0
             ) -> dict[str, torch.Tensor]:
        """Loss components on a batch of B real transitions, all in normalised units.

        In training mode with `bootstrap`, member e sees its own resample of the B rows. Each
        component is the mean over members, so the numbers compare with `MLPWorldModel`'s.
        "delta" is the squared error of the predicted mean change; with Gaussian heads the
        total uses "nll" instead (plus "logvar_bounds", the penalty that keeps the bounds tight).
        """
        rows = len(batch["obs"])
        if self.training and self.bootstrap:
            index = torch.randint(rows, (self.ensemble_size, rows),
                                  generator=self._bootstrap_generator).to(self.device)
            batch = {key: value[index] for key, value in batch.items()}  # (E, B, ...)
        out = self(batch["obs"], batch["action"])
        d = self.obs_dim
        target_delta = (batch["next_obs"] - batch["obs"] - self.delta_mean) / self.delta_std
        target_delta = target_delta.expand(out.shape[0], *target_delta.shape[-2:])
        target_reward = ((batch["reward"] - self.reward_mean) / self.reward_std
                         ).expand(out.shape[:2])
        terminated = batch["terminated"].float().expand(out.shape[:2])
        squared_error = (out[..., :d] - target_delta) ** 2
        losses = {
            "delta": squared_error.mean(),
            "reward": F.huber_loss(out[..., d], target_reward),
            "done": F.binary_cross_entropy_with_logits(
                out[..., d + 1], terminated,
                pos_weight=torch.tensor(done_weight, device=out.device)),
        }
        if self.gaussian:
            logvar = self._logvar(out[..., d + 2:])
            # Gaussian NLL without its constant; 0.5 * (error^2 / var + log var) per dim.
            losses["nll"] = 0.5 * (squared_error * torch.exp(-logvar) + logvar).mean()
            # Pulls the bounds together, so they hug the variances the data supports.
            losses["logvar_bounds"] = 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
            losses["total"] = (losses["nll"] + losses["logvar_bounds"] + losses["reward"]
                               + losses["done"])
        else:
            losses["total"] = losses["delta"] + losses["reward"] + losses["done"]
        return losses

    # -- the two functions every planner uses ---------------------------------------------------
    # `filter` and `beliefs` come from `ObservedState`: the belief is the observation.

    # `imagine` comes from `Imagines`: one batched call of all E members per imagined step, on
    # all N candidates. `observations`, `rewards` and `dones` follow `self.propagation`;
    # `disagreement` (N, H) is the members' disagreement on each step's prediction.

    def initial(self, state: Any, n: int) -> torch.Tensor:
        """A belief (D,) or (n, D) -> n observations (n, D)."""
        state = observation_state(state, self.obs_dim, self.device)
        if state.dim() == 2 and state.shape[0] not in (1, n):
            raise ValueError(f"state: expected shape ({self.obs_dim},) or ({n}, {self.obs_dim})"
                             f", got {tuple(state.shape)}")
        return state.reshape(-1, self.obs_dim).expand(n, self.obs_dim)

    def step(self, obs: torch.Tensor, actions: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every member on all n observations (n, D) at once -> (next obs (n, D), reward (n,),
        termination logit (n,), disagreement (n,)), following `self.propagation`."""
        _check_propagation(self.propagation)
        d = self.obs_dim
        out = self._network(self._inputs(obs, self.action_spec.encode(actions)))  # (E, n, out)
        if self.propagation == "mean":
            followed = out.mean(0)  # the outputs are linear in the raw units: mean first
            centre = followed[:, :d]
        else:  # "random_member": candidate i follows member i % E
            candidates = torch.arange(len(obs), device=obs.device)
            followed = out[candidates % self.ensemble_size, candidates]
            centre = out[..., :d].mean(0)
        next_obs = obs + followed[:, :d] * self.delta_std + self.delta_mean
        reward = followed[:, d] * self.reward_std + self.reward_mean
        return next_obs, reward, followed[:, d + 1], _spread(out[..., :d], centre)

    def decode(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations (..., D) -> normalised observations (..., D): what a policy reads."""
        return self.standardise(obs)

    # -- handy for notebooks --------------------------------------------------------------------

    def subset(self, size: int) -> EnsembleWorldModel:
        """A new ensemble made of copies of the first `size` members (same normalisation)."""
        size = check_positive_int("size", size)
        if size > self.ensemble_size:
            raise ValueError(f"size: expected at most ensemble_size={self.ensemble_size}, "
                             f"got {size}")
        smaller = EnsembleWorldModel(self.obs_dim, self.action_spec, size, self.hidden,
                                     self.layers, self.gaussian, self.propagation,
                                     self.bootstrap, seed=0, device=self.device)
        state = {key: value[:size] if key.startswith("net.") else value
                 for key, value in self.state_dict().items()}
        smaller.load_state_dict(state)
        smaller.eval()
        return smaller


def _check_propagation(propagation: Any) -> Propagation:
    if propagation not in PROPAGATIONS:
        raise ValueError(f"propagation: expected one of {PROPAGATIONS}, got {propagation!r}")
    return propagation
