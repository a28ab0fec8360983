"""What every world model is: the written-down interfaces, the `Rollout` and one imagination loop.

A world model is two functions (docs/DESIGN.md):

- `filter(state, action, obs) -> state` folds a real observation into the belief;
- `imagine(state, actions) -> Rollout` dreams forward, batched over N candidates.

`WorldModel` is what planners, the loop, Dyna, the actor-critic and the analyses rely on;
`TrainableModel` adds what `wmkit.fit` needs. A model that keeps its imagination in a latent
state implements the four small `LatentDynamics` methods and inherits `imagine` from `Imagines`,
which runs the one loop below for fixed action sequences *and* for a policy that chooses each
action from the imagined state (Dreamer's actor, Dyna's greedy Q, MCTS's rollouts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import torch

from ..utils import as_float_tensor

if TYPE_CHECKING:
    from ..buffer import NormStats, ReplayBuffer
    from ..spaces import ActionSpec

TerminationFn = Callable[[torch.Tensor], torch.Tensor]
"""next_obs (..., D) -> done (...,) bool: a known termination rule given to a planner."""


@dataclass
class Imagined:
    """An imagined state as a policy sees it: observation (N, D) and features (N, F).

    `features` is what an actor or critic reads: the normalised observation for the MLP and
    the ensemble, the belief (h, z) for the RSSM, the recurrent state for the LSTM.
    """

    observation: torch.Tensor
    features: torch.Tensor


Policy = Callable[[Imagined], torch.Tensor]
"""An imagined state (N states) -> actions (N,) long (Discrete) or (N, A) float (Box)."""


@dataclass
class Rollout:
    """N imagined trajectories of H steps from one start (or N starts).

    observations: (N, H+1, D), [:, 0] is the start (decoded, for a latent model)
    actions:      (N, H) long (Discrete) or (N, H, A) float (Box)
    rewards:      (N, H), zero after the first predicted termination
    dones:        (N, H) bool, True where the episode ends at that step (the model's head, or
                  the `termination_fn` given to `imagine`)
    disagreement: (N, H) how much an ensemble's members disagree on each step, or None
    features:     (N, H+1, F) what a policy reads at each imagined state (see `Imagined`)
    done_logits:  (N, H) the model's termination logits (> 0: "ends"), whatever `dones` used
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    disagreement: torch.Tensor | None = None
    features: torch.Tensor | None = None
    done_logits: torch.Tensor | None = None

    @property
    def returns(self) -> torch.Tensor:
        """(N,) the undiscounted imagined return of each trajectory."""
        return self.rewards.sum(dim=1)

    @property
    def alive(self) -> torch.Tensor:
        """(N, H) bool: True where no termination happened before that step."""
        return alive_before(self.dones)

    def __len__(self) -> int:
        return self.rewards.shape[1]


def alive_before(dones: torch.Tensor) -> torch.Tensor:
    """(N, H) bool dones -> (N, H) bool: step t counts if no done at steps < t.

    The terminating step itself still counts (gymnasium pays CartPole's reward on it).
    """
    ended_before = torch.cumsum(dones.int(), dim=1) - dones.int()
    return ended_before == 0


# ------------------------------------------------------------------------------ the interfaces


@runtime_checkable
class WorldModel(Protocol):
    """The interface every consumer of a world model relies on, and nothing more.

    obs_dim: D, the size of one observation; action_spec: the actions it understands;
    device: where `imagine` returns its tensors.
    """

    obs_dim: int
    action_spec: ActionSpec

    @property
    def device(self) -> torch.device: ...

    def filter(self, state: Any, action: Any, obs: Any) -> Any:
        """Fold a real observation (reached by `action` from `state`) into the belief.

        `state=None, action=None` starts an episode. Returns one belief (batch of 1).
        """

    def beliefs(self, buffer: ReplayBuffer, index: torch.Tensor) -> Any:
        """The beliefs (N, ...) right after rows `index` (N,) of `buffer` were observed:
        what `filter` gives there (the observation itself for a Markov model)."""

    def imagine(self, state: Any, actions: torch.Tensor | Policy,
                termination_fn: TerminationFn | None = None, *, horizon: int | None = None,
                check: bool = True) -> Rollout:
        """Dream forward from `state` (one belief, or N of them).

        actions: N action sequences (N, H[, A]), or a `Policy` choosing each action from the
            imagined state (then `horizon` gives H, and the state's batch gives N).
        termination_fn: a known rule (next obs -> done) replacing the termination head.
        check: validate the actions' values (a planner that samples valid actions itself
            passes False: reading values would make the host wait for a GPU).
        """


@runtime_checkable
class TrainableModel(WorldModel, Protocol):
    """A world model `wmkit.fit` can train (an `nn.Module` with the methods below).

    batches: "transitions" (loss on rows (B, ...)) or "sequences" (loss on windows
        (B, L, ...) of consecutive rows from `ReplayBuffer.sample_sequences`, with a "mask"
        (B, L) of the rows that count).
    fit_defaults: this model's defaults for `fit`'s arguments left at None (e.g. the RSSM
        decays its learning rate: {"final_lr": 1e-4, ...}); see `wmkit.train.FIT_DEFAULTS`.
    """

    batches: ClassVar[Literal["transitions", "sequences"]]
    fit_defaults: ClassVar[Mapping[str, Any]]

    def set_normalizer(self, stats: NormStats) -> None:
        """Copy the buffer's normalisation statistics into the model (`fit` does, first)."""

    def loss(self, batch: dict[str, torch.Tensor], done_weight: float = 1.0,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss components on a batch, with their sum under "total" (what `fit` minimises).

        done_weight: positive-class weight of the termination loss (`wmkit.done_weight`);
        generator: for any randomness the loss draws (latent samples), so fits are seeded.
        """


class LatentDynamics(Protocol):
    """The four steps `Imagines.imagine` composes (a latent is the model's batched state)."""

    def initial(self, state: Any, n: int) -> Any:
        """A belief (batch 1 or n) -> n latents, one per imagined trajectory."""

    def step(self, latent: Any, actions: torch.Tensor
             ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """n latents, actions (n[, A]) -> (next latents, reward (n,), termination logit (n,),
        disagreement (n,) or None)."""

    def decode(self, latent: Any) -> torch.Tensor:
        """n latents -> their observations (n, D) in raw units."""

    def features(self, latent: Any) -> torch.Tensor:
        """n latents -> what a policy reads (n, F)."""


class Imagines:
    """Mixin: `imagine` for a model that implements `LatentDynamics` and has `action_spec`."""

    action_spec: ActionSpec

    def imagine(self, state: Any, actions: torch.Tensor | Policy,
                termination_fn: TerminationFn | None = None, *, horizon: int | None = None,
                check: bool = True) -> Rollout:
        """See `WorldModel.imagine`; one batched `step` per imagined step."""
        return imagine_latent(self, state, actions, termination_fn, horizon, check)


class ObservedState:
    """Mixin: `filter` and `beliefs` of a Markov model, whose belief is the observation itself
    (the MLP, the ensemble, the true CartPole and Pendulum)."""

    obs_dim: int
    device: torch.device

    def filter(self, state: Any, action: Any, obs: Any) -> torch.Tensor:
        """The observation, checked, as a (D,) tensor: the previous belief and action do not
        matter when the state is observed."""
        return as_float_tensor("obs", obs, (self.obs_dim,), self.device).reshape(self.obs_dim)

    def beliefs(self, buffer: ReplayBuffer, index: torch.Tensor) -> torch.Tensor:
        """The observations (N, D) of rows `index` (N,) of `buffer`."""
        return buffer[index]["obs"].to(self.device)


@contextmanager
def frozen(model: WorldModel) -> Iterator[WorldModel]:
    """Within it, the model's weights (if it is a torch module) ask for no gradients.

    Who backpropagates through `imagine` without training the model (the gradient planner:
    d(return)/d(actions); the actor-critic's dynamics gradient: d(return)/d(actor)) wants no
    weight gradients: with the weights frozen, autograd records nothing for them and a compiled
    backward computes none (half its matmuls). What was frozen before stays frozen; the rest is
    restored on the way out, whatever happens.
    """
    weights = [p for p in model.parameters() if p.requires_grad] \
        if isinstance(model, torch.nn.Module) else []
    for weight in weights:
        weight.requires_grad_(False)
    try:
        yield model
    finally:
        for weight in weights:
            weight.requires_grad_(True)


def batch_size_of(state: Any) -> int:
    """How many beliefs `state` holds: 1 for one (D,) observation, else its leading dimension
    (a latent state class such as `RSSMState` tells with `len`)."""
    if isinstance(state, torch.Tensor):
        return 1 if state.dim() == 1 else state.shape[0]
    return len(state)


def observation_state(state: Any, obs_dim: int, device: torch.device) -> torch.Tensor:
    """A Markov model's belief(s) as a float tensor (D,) or (N, D) on `device`.

    Tensors are checked by shape only (a value check would make the host wait for a GPU on
    every planning step; `filter` already checked the observation); anything else (a list, a
    numpy array) is checked like an observation.
    """
    if not isinstance(state, torch.Tensor):
        return as_float_tensor("state", state, (obs_dim,), device)
    if state.dim() not in (1, 2) or state.shape[-1] != obs_dim:
        raise ValueError(f"state: expected shape ({obs_dim},) or (N, {obs_dim}), "
                         f"got {tuple(state.shape)}")
    if state.device != device or state.dtype != torch.float32:
        state = state.to(device=device, dtype=torch.float32)
    return state


def imagine_latent(model: Any, state: Any, actions: torch.Tensor | Policy,
                   termination_fn: TerminationFn | None, horizon: int | None,
                   check: bool) -> Rollout:
    """The one imagination loop: H batched steps of `model` (a `LatentDynamics`).

    With a tensor of action sequences (N, H[, A]) it runs them open loop; with a policy it asks
    the policy for each step's actions from the imagined state (closed loop). Gradients flow
    through it when enabled (gradient-based planning, the actor-critic's Box actions).
    """
    if callable(actions) and not isinstance(actions, torch.Tensor):
        policy: Policy | None = actions
        if horizon is None or isinstance(horizon, bool) or not isinstance(horizon, int) \
                or horizon < 1:
            raise ValueError(f"horizon: expected an int >= 1 with a policy, got {horizon!r}")
        n, sequences = batch_size_of(state), None
    else:
        policy = None
        sequences = model.action_spec.check_sequences(actions, values=check)
        n, horizon = sequences.shape[:2]
    latent = model.initial(state, n)
    observations, features = [model.decode(latent)], [model.features(latent)]
    taken, rewards, logits, spreads = [], [], [], []
    for t in range(horizon):
        if policy is None:
            action = sequences[:, t]
        else:
            action = policy(Imagined(observations[-1], features[-1]))
        latent, reward, logit, spread = model.step(latent, action)
        taken.append(action)
        rewards.append(reward)
        logits.append(logit)
        spreads.append(spread)
        observations.append(model.decode(latent))
        features.append(model.features(latent))
    observations_t = torch.stack(observations, 1)
    done_logits = torch.stack(logits, 1)
    dones = done_logits > 0 if termination_fn is None else termination_fn(observations_t[:, 1:])
    disagreement = None if spreads[0] is None else torch.stack(spreads, 1)
    return Rollout(observations_t, sequences if policy is None else torch.stack(taken, 1),
                   torch.stack(rewards, 1) * alive_before(dones), dones, disagreement,
                   torch.stack(features, 1), done_logits)


@torch.no_grad()
def rollout_by_predict(model: Any, state: torch.Tensor, actions: torch.Tensor,
                       termination_fn: TerminationFn | None = None) -> Rollout:
    """Imagine by calling `model.predict(obs (N, D), action (N[, A]))` once per step.

    The plain reference a model's fast `imagine` must match (tests, exercise 02).
    predict returns (next obs (N, D), reward (N,), done logit (N,)); a logit > 0 ends the
    trajectory unless `termination_fn` (next obs -> done) replaces it.
    state: (D,) or (N, D); actions: (N, H[, A]).
    """
    n, horizon = actions.shape[:2]
    obs = state.expand(n, state.shape[-1])
    observations, rewards, logits = [obs], [], []
    for t in range(horizon):
        obs, reward, logit = model.predict(obs, actions[:, t])
        observations.append(obs)
        rewards.append(reward)
        logits.append(logit)
    observations_t = torch.stack(observations, 1)
    if termination_fn is None:
        dones = torch.stack(logits, 1) > 0
    else:
        dones = termination_fn(observations_t[:, 1:])
    return Rollout(observations_t, actions, torch.stack(rewards, 1) * alive_before(dones), dones)
