"""Learning a policy inside the dream: a Dreamer-style actor-critic on any world model.

MPC (planners/) searches the world model at every real step. This agent does its thinking
*between* real steps instead, and acts with one small network:

1. start from real beliefs: N rows of the replay buffer, `model.beliefs(buffer, index)`;
2. dream H steps under the actor, `model.imagine(starts, actor, horizon=H)`: the learned
   reward head pays r_t, the (calibrated) termination head says how likely the dream goes on,
   c_t, and the critic values every imagined state;
3. the critic regresses the λ-returns R_t of the dream (`returns.lambda_returns`), computed with
   a slow target copy of itself; the actor makes them larger:
   - Discrete actions: REINFORCE, -log pi(a_t | s_t) * (R_t - v(s_t)) / max(1, S), as
     DreamerV3 does;
   - Box actions, where the model is differentiable: the gradient of R_t itself flows back
     through the imagined dynamics into the actor's reparameterised samples (Dreamer v1);
   both with an entropy bonus, and advantages divided by DreamerV3's return scale
   max(1, S), S = EMA of P95 - P05 of the returns (`returns.ReturnScale`);
4. at a real step: filter the observation into the belief, and the actor alone chooses.

The kit's loop trains it: `wm.learn(env, agent, steps=..., seed=...)` fits the world model and
then calls `agent.after_fit(buffer, seed)`, which runs `updates_per_step` imagined updates per
real step added since the last call. The *features* an actor and a critic read are the model's:
normalised observations for the MLP and the ensemble, the belief (h, z) for the RSSM.

Acting: with `explore` False the agent acts with the actor's mode (argmax, or tanh of the
mean): what `evaluate`, notebooks and a deployed agent get. With `explore` True it samples the
actor's distribution with its own generator (reseeded by `reseed`, so repeatable). `wm.learn`
sets `explore` for its training episodes and `wm.evaluate` runs with it off, as for every
`Planner`. Sampling in training matters: greedy training episodes all drift to the same
track edge (docs/RESULTS.md).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..buffer import ReplayBuffer
from ..models.base import Imagined, Policy, Rollout, WorldModel, frozen
from ..train import done_weight as buffer_done_weight
from ..utils import check_positive_int
from .networks import Actor, mlp
from .returns import ReturnScale, continue_probabilities, lambda_returns, reach_weights

Gradient = Literal["auto", "reinforce", "dynamics"]
GRADIENTS = ("auto", "reinforce", "dynamics")


@runtime_checkable
class FeatureModel(WorldModel, Protocol):
    """A world model that also tells what a policy reads at one of its beliefs.

    `features(belief) -> (F,) or (N, F)`: the same numbers `Rollout.features` holds for
    imagined states (MLP and ensemble: the normalised observation; RSSM: (h, z)).
    """

    def features(self, belief: Any) -> torch.Tensor: ...


def never_ends(next_observations: torch.Tensor) -> torch.Tensor:
    """A termination rule that never fires: (N, H, D) -> (N, H) False.

    Imagining with it keeps every reward of the dream (a `Rollout` zeroes rewards after its
    first hard `done`); how likely the episode ended is read softly from `done_logits`.
    """
    return torch.zeros(next_observations.shape[:-1], dtype=torch.bool,
                       device=next_observations.device)


@dataclass
class TrainStats:
    """What one call of `ActorCritic.train` did, one value per imagined update (tensors (U,)).

    imagined_return: mean λ-return of the dreams' starts, R_0 (what the actor maximises);
    actor_loss, critic_loss, entropy (mean over imagined states, reach-weighted), scale:
    the return scale max(1, S) the advantages were divided by.
    """

    imagined_return: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    actor_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    critic_loss: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    entropy: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    scale: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    def __len__(self) -> int:
        return len(self.imagined_return)


@dataclass
class DreamScore:
    """An actor's dreams (N of H steps) as the agent sees them.

    continues: (N, H) calibrated probability that the episode goes on after step t;
    alive: (N, H+1) probability that s_t is reached before the episode ends (1 at t = 0);
    values: (N, H+1) the critic's value of every imagined state;
    returns: (N, H) the λ-returns the critic is trained on (bootstrapped by the slow critic);
    expected_return: (N,) sum_t P(s_t reached) * r_t, undiscounted.
    """

    continues: torch.Tensor
    alive: torch.Tensor
    values: torch.Tensor
    returns: torch.Tensor
    expected_return: torch.Tensor


def _check_float(name: str, value: Any, low: float, high: float, low_open: bool = False,
                 high_open: bool = False) -> float:
    """`value` as a finite float in the interval, or a ValueError naming `name`."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}: expected a float in {interval}, got {value!r}")
    return value


class ActorCritic:
    """An actor and a critic trained on the world model's dreams; acts with the actor alone.

    Args:
        model: a world model whose rollouts carry rewards, `features` and `done_logits`
            (MLP, ensemble, RSSM); it is trained by `wm.learn` (or `wm.fit`), never here.
        horizon: H, imagined steps per dream (DreamerV3: 15).
        starts: N, real beliefs each update dreams from (one batch).
        updates_per_step: imagined updates per real step added to the buffer; `after_fit`
            runs that many for the rows added since its last call (fractions carry over).
            The dial that matters most: fewer updates, more real steps to learn (halving
            them doubled the median on CartPole: docs/RESULTS.md).
        discount: γ in (0, 1]; lam: λ in [0, 1] of the λ-returns.
        entropy_scale: η >= 0, weight of the actor's entropy bonus (per unit of normalised
            return; DreamerV3: 3e-4, which did no better on CartPole's hard seed).
        actor_lr, critic_lr: Adam learning rates in (0, 1).
        target_tau: the slow critic moves this fraction of the way to the critic per update.
        return_decay: the EMA decay of the return scale S (DreamerV3: 0.99).
        hidden, layers: width and depth of the actor's and the critic's MLPs.
        gradient: how the actor learns: "reinforce" (score function), "dynamics" (backprop
            through the differentiable model; Box only) or "auto" (Discrete: reinforce; Box:
            dynamics when the model passes gradients to actions, else reinforce).
        explore: act by sampling the actor (True) or by its mode (False); `wm.learn` sets it
            for training episodes, `wm.evaluate` turns it off (see the module docstring).
        seed: seeds the acting generator (`reseed` restarts it).
        progress: a progress bar over each call's imagined updates.
    """

    def __init__(self, model: WorldModel, horizon: int = 15, starts: int = 256,
                 updates_per_step: float = 2.0, discount: float = 0.99, lam: float = 0.95,
                 entropy_scale: float = 3e-3, actor_lr: float = 1e-3, critic_lr: float = 1e-3,
                 target_tau: float = 0.02, return_decay: float = 0.99, hidden: int = 64,
                 layers: int = 2, gradient: Gradient = "auto", explore: bool = False,
                 seed: int = 0, progress: bool = True) -> None:
        self.horizon = check_positive_int("horizon", horizon)
        self.starts = check_positive_int("starts", starts)
        self.updates_per_step = _check_float("updates_per_step", updates_per_step, 0, 1e6)
        self.discount = _check_float("discount", discount, 0, 1, low_open=True)
        self.lam = _check_float("lam", lam, 0, 1)
        self.entropy_scale = _check_float("entropy_scale", entropy_scale, 0, 1e6)
        self.actor_lr = _check_float("actor_lr", actor_lr, 0, 1, True, True)
        self.critic_lr = _check_float("critic_lr", critic_lr, 0, 1, True, True)
        self.target_tau = _check_float("target_tau", target_tau, 0, 1, low_open=True)
        self.return_scale = ReturnScale(return_decay)
        hidden = check_positive_int("hidden", hidden)
        layers = check_positive_int("layers", layers)
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient: expected one of {GRADIENTS}, got {gradient!r}")
        if not isinstance(model, FeatureModel):
            raise ValueError(f"model: expected a world model with filter, beliefs, imagine and "
                             f"features(belief), got {type(model).__name__}")
        self.model = model
        self.action_spec = model.action_spec
        self.device = torch.device(model.device)
        n_features, differentiable = self._probe(model)
        if gradient == "dynamics" and (self.action_spec.discrete or not differentiable):
            why = "Discrete actions have no reparameterised gradient" if \
                self.action_spec.discrete else "the model passes no gradient to the actions"
            raise ValueError(f"gradient: 'dynamics' needs Box actions and a differentiable "
                             f"model ({why}); use 'reinforce'")
        if gradient == "auto":
            gradient = "dynamics" if not self.action_spec.discrete and differentiable \
                else "reinforce"
        self.gradient: Gradient = gradient
        self.actor = Actor(n_features, self.action_spec, hidden, layers).to(self.device)
        self.critic = mlp(n_features, hidden, layers, 1).to(self.device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=self.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr)
        self.explore = bool(explore)
        self.progress = bool(progress)
        self.done_weight = 1.0  # the termination head's BCE weight; after_fit reads the buffer's
        self.updates = 0  # imagined updates so far
        self.last_train = TrainStats()
        self._credit = 0.0  # imagined updates owed to rows not yet trained on
        self._rows_seen = 0
        self.generator = torch.Generator(device=self.device)
        self.reseed(seed)
        self.reset()

    def _probe(self, model: WorldModel) -> tuple[int, bool]:
        """Imagine one step from a fresh belief to learn the feature size F and whether the
        model predicts what the actor-critic needs (ValueError naming what it lacks)."""
        spec = model.action_spec
        belief = model.filter(None, None, np.zeros(model.obs_dim, dtype=np.float32))
        generator = torch.Generator(device=self.device).manual_seed(0)
        actions: list[torch.Tensor] = []

        def random_policy(imagined: Imagined) -> torch.Tensor:
            action = spec.sample((imagined.observation.shape[0],), generator, self.device)
            if not spec.discrete:
                action.requires_grad_(True)
            actions.append(action)
            return action

        try:
            rollout = model.imagine(belief, random_policy, horizon=1)
        except TypeError as error:
            raise ValueError(f"model: {type(model).__name__}.imagine cannot follow a policy "
                             f"(imagine(state, policy, horizon=H)): {error}") from error
        if not isinstance(rollout.rewards, torch.Tensor) or rollout.rewards.dim() != 2:
            raise ValueError("model: it predicts no rewards (Rollout.rewards is not an (N, H) "
                             "tensor); the actor-critic's returns need a reward head")
        if rollout.done_logits is None:
            raise ValueError("model: it predicts no continuation (Rollout.done_logits is None); "
                             "the actor-critic discounts its returns by the continue head")
        if rollout.features is None:
            raise ValueError("model: its rollouts carry no features (Rollout.features is None);"
                             " the actor and the critic read them")
        differentiable = False
        if not spec.discrete and rollout.rewards.requires_grad:
            # The weights need gradients anyway; does any reach the action?
            grad = torch.autograd.grad(rollout.rewards.sum(), actions[0], allow_unused=True)[0]
            differentiable = grad is not None
        return rollout.features.shape[-1], differentiable

    # -- the Planner interface ----------------------------------------------------------------

    def reseed(self, seed: int) -> None:
        """Restart the acting generator (used when `explore` is True) from `seed`."""
        self.generator.manual_seed(int(seed))

    def reset(self) -> None:
        """Forget the episode: the belief and the last action."""
        self.state: Any = None
        self.previous_action: Any = None

    @torch.no_grad()
    def __call__(self, obs: Any) -> Any:
        """One real step: filter the observation into the belief, and let the actor choose."""
        self.state = self.model.filter(self.state, self.previous_action, obs)
        features = self.model.features(self.state).reshape(1, -1)
        action = self.actor.sample(features, self.generator) if self.explore \
            else self.actor.mode(features)
        if self.action_spec.discrete:
            self.previous_action = int(action)
        else:
            self.previous_action = action[0].cpu().numpy().astype(np.float32)
        return self.previous_action

    def after_fit(self, buffer: ReplayBuffer, seed: int = 0) -> None:
        """`learn` refitted the model on `buffer`: dream `updates_per_step` updates per new row.

        Rows are counted from the buffer's length at the last call (a new, shorter buffer
        counts from zero); fractional updates carry over to the next call.
        """
        rows = len(buffer)
        new_rows = rows - self._rows_seen if rows >= self._rows_seen else rows
        self._rows_seen = rows
        self._credit += self.updates_per_step * new_rows
        updates = int(self._credit)
        self._credit -= updates
        self.done_weight = buffer_done_weight(buffer)
        if updates:
            self.last_train = self.train(buffer, updates, seed=seed)

    # -- learning in imagination ----------------------------------------------------------------

    def policy(self, generator: torch.Generator | None) -> Policy:
        """The actor as a `Policy` for `imagine`: samples (reparameterised for Box)."""
        return lambda imagined: self.actor.sample(imagined.features, generator)

    def train(self, buffer: ReplayBuffer, updates: int, seed: int = 0) -> TrainStats:
        """`updates` imagined updates from real beliefs of `buffer`; the model stays as it is.

        Reads the termination head's calibration from `self.done_weight` (`after_fit` sets it
        from the buffer; call `wm.done_weight(buffer)` yourself when calling this directly).
        """
        updates = check_positive_int("updates", updates)
        self._check_buffer(buffer)
        index_generator = torch.Generator().manual_seed(int(seed))
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        index = torch.randint(len(buffer), (updates, self.starts), generator=index_generator)
        rows: dict[str, list[torch.Tensor]] = {name: [] for name in TrainStats.__annotations__}
        chunk = 32  # updates whose starting beliefs are computed in one batched call
        bar = tqdm(total=updates, desc="dream", leave=False, disable=not self.progress)
        for first in range(0, updates, chunk):
            beliefs = self.model.beliefs(buffer, index[first:first + chunk].reshape(-1))
            for i in range(min(chunk, updates - first)):
                starts = beliefs[i * self.starts:(i + 1) * self.starts]
                for name, value in self.update(starts, generator).items():
                    rows[name].append(value)
                bar.update()
        bar.close()
        return TrainStats(**{name: torch.stack(values).cpu() for name, values in rows.items()})

    def update(self, starts: Any, generator: torch.Generator | None = None
               ) -> dict[str, torch.Tensor]:
        """One imagined update of the actor, the critic and the slow critic from N beliefs.

        Returns 0-dim tensors: imagined_return, actor_loss, critic_loss, entropy, scale.
        """
        dynamics = self.gradient == "dynamics"
        with torch.set_grad_enabled(dynamics), frozen(self.model):
            rollout = self.model.imagine(starts, self.policy(generator), never_ends,
                                         horizon=self.horizon, check=False)
            continues = continue_probabilities(rollout.done_logits, self.done_weight)
            # Bootstrapped by the slow critic, as in Dreamer v1-v2. (DreamerV3 bootstraps
            # with the critic and regularises it towards the slow one instead: on CartPole's
            # hard seed that did no better, 2,440 vs 2,663 real steps, so the simpler form.)
            values = self.target_critic(rollout.features).squeeze(-1)  # (N, H+1)
            returns = lambda_returns(rollout.rewards, values, continues, self.discount, self.lam)
        weights = reach_weights(continues.detach())  # (N, H): is s_t reached alive?
        scale = self.return_scale.update(returns).to(self.device)
        actor_loss, entropy = self._actor_step(rollout, returns, values, weights, scale)
        features = rollout.features[:, :-1].detach()
        online = self.critic(features).squeeze(-1)
        critic_loss = 0.5 * (weights * (online - returns.detach()) ** 2).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), 100.0)
        self.critic_optimizer.step()
        with torch.no_grad():
            for target, online in zip(self.target_critic.parameters(), self.critic.parameters()):
                target.lerp_(online, self.target_tau)
        self.updates += 1
        return {"imagined_return": returns[:, 0].mean().detach(), "actor_loss": actor_loss,
                "critic_loss": critic_loss.detach(), "entropy": entropy, "scale": scale}

    def _actor_step(self, rollout: Rollout, returns: torch.Tensor, values: torch.Tensor,
                    weights: torch.Tensor, scale: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Adam step of the actor; returns its loss and the mean entropy (0-dim)."""
        features = rollout.features[:, :-1].detach()
        log_prob, entropy = self.actor.log_prob_entropy(features, rollout.actions.detach())
        if self.gradient == "reinforce":
            advantage = ((returns - values[:, :-1]) / scale).detach()
            objective = log_prob * advantage
        else:  # the return itself, differentiated through the imagined dynamics
            objective = returns / scale
        loss = -(weights * (objective + self.entropy_scale * entropy)).mean()
        parameters = list(self.actor.parameters())
        # autograd.grad, not backward: the world model's weights must not collect gradients.
        grads = torch.autograd.grad(loss, parameters)
        for parameter, grad in zip(parameters, grads):
            parameter.grad = grad
        nn.utils.clip_grad_norm_(parameters, 100.0)
        self.actor_optimizer.step()
        return loss.detach(), (weights * entropy).sum().detach() / weights.sum()

    # -- looking at the dream -------------------------------------------------------------------

    @torch.no_grad()
    def dream(self, buffer: ReplayBuffer, index: Any, horizon: int | None = None,
              greedy: bool = True, seed: int = 0) -> Rollout:
        """The actor's dreams from the beliefs after rows `index` (N,) of `buffer`.

        greedy: the actor's mode at every imagined step (what a real episode does), else
        samples. Every reward is kept (`never_ends`); read the chance of having ended so far
        with `continue_probabilities(rollout.done_logits, agent.done_weight)`.
        """
        horizon = self.horizon if horizon is None else check_positive_int("horizon", horizon)
        self._check_buffer(buffer)
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        if len(index) == 0 or int(index.min()) < 0 or int(index.max()) >= len(buffer):
            raise ValueError(f"index: expected rows in [0, {len(buffer)}), got {index.tolist()}")
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        policy: Policy = (lambda imagined: self.actor.mode(imagined.features)) if greedy \
            else self.policy(generator)
        return self.model.imagine(self.model.beliefs(buffer, index), policy, never_ends,
                                  horizon=horizon, check=False)

    @torch.no_grad()
    def expected_return(self, rollout: Rollout) -> torch.Tensor:
        """(N,) the undiscounted return a dream expects: sum_t P(s_t reached) * r_t, with the
        calibrated continuation (`self.done_weight`)."""
        return self.score(rollout).expected_return

    @torch.no_grad()
    def score(self, rollout: Rollout) -> DreamScore:
        """What the agent makes of a dream (e.g. from `dream`): see `DreamScore`."""
        continues = continue_probabilities(rollout.done_logits, self.done_weight)
        reach = reach_weights(continues)
        values = self.critic(rollout.features).squeeze(-1)
        returns = lambda_returns(rollout.rewards, self.target_critic(rollout.features).squeeze(-1),
                                 continues, self.discount, self.lam)
        alive = torch.cat([reach, reach[:, -1:] * continues[:, -1:]], dim=1)
        return DreamScore(continues, alive, values, returns, (reach * rollout.rewards).sum(1))

    def _check_buffer(self, buffer: ReplayBuffer) -> None:
        if not isinstance(buffer, ReplayBuffer):
            raise ValueError(f"buffer: expected a ReplayBuffer, got {type(buffer).__name__}")
        if len(buffer) == 0:
            raise ValueError("buffer: is empty; the dreams start from its rows")
        if buffer.obs_dim != self.model.obs_dim or buffer.action_spec != self.action_spec:
            raise ValueError(f"buffer: holds observations of size {buffer.obs_dim} and actions "
                             f"{buffer.action_spec}; the model expects {self.model.obs_dim} and "
                             f"{self.action_spec}")
