"""Dyna: a Q-learner that also learns from transitions its world model imagines.

Sutton's Dyna (1991) in one sentence: every real step feeds two learners, the value function
(directly, "model-free") and the world model; the model then hands the value learner `k`
extra minibatches of *imagined* experience ("planning"). With `planning_updates=0` this file
is plain Double DQN, the model-free baseline, the same code.

How the imagined experience is made (MBPO-style branching, Janner et al. 2019): start states
are *real* states sampled from the replay buffer, and the model rolls each one forward only
`rollout_length` steps (1 to a few) under uniformly random actions. Short branches keep the
model's compounding error small; starting from real states keeps them where the model was
trained; random actions are fine because Q-learning is off-policy, and they give every real
state the "what if I had pushed the other way?" transition the real data never holds.

The fair model-free comparison is not k=0 with one update per step but k=0 with k extra
updates on *replayed real* transitions (`replay_updates`): the same number of gradient steps,
only the data differ. If Dyna beats that, the model is what helped, not the extra compute.

One-step imagined transitions from visited states turned out to give little that replay
lacks. What replay cannot give is a multi-step return of the *current* greedy policy (the
buffer's n-step returns belong to older, more random policies). `value_expansion=H` (MVE,
Feinberg et al. 2018) uses the model for exactly that: each imagined update regresses
Q(s_0, a_0) of a real state s_0 and a random action a_0 on the model's H-step return under
the greedy policy plus the bootstrapped value of s_H, so the only signal CartPole has (when
the pole falls) travels H states per update instead of one. `value_expansion=0` (the
default) keeps the one-step transitions.

Measured numbers (Dyna vs the replay-matched baseline vs MPC) are in docs/RESULTS.md.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..buffer import ReplayBuffer
from ..models.base import Imagined, Policy, TerminationFn, WorldModel
from ..runner import Episode, Evaluation, LearnLog, evaluate, run
from ..spaces import ActionSpec
from ..train import check_fit_kwargs, done_weight, fit
from ..utils import (
    as_float_tensor,
    check_nonnegative_int,
    check_positive_int,
    default_device,
    seed_everything,
)

Batch = dict[str, torch.Tensor]
"""Transitions: obs (B, D), action (B,) long, reward (B,), next_obs (B, D), terminated (B,)."""


def _check_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name}: expected a float in [{low}, {high}], got {value!r}")
    return float(value)


class Dyna:
    """Double-DQN with k imagined updates per real step (k = `planning_updates`).

    Args:
        obs_dim: D, the observation size.
        action_spec: the (Discrete) action space, e.g. `ActionSpec.from_space(env.action_space)`.
        model: any `WorldModel` (MLP, ensemble, RSSM, ...): Dyna starts its imagination from
            `model.beliefs` of real buffer rows and runs it with `model.imagine`, reading the
            imagined observations; `train_dyna` refits it. May be None when
            `planning_updates == 0` (the model-free baseline never touches a model).
        planning_updates: k, updates on imagined minibatches after each real step.
        replay_updates: extra updates on replayed *real* minibatches after each real step
            (the replay-matched baseline: k=0 with `replay_updates=k`).
        rollout_length: imagined steps branched from each real start state (1-step mode).
        value_expansion: H; with H >= 1 each imagined update instead regresses Q(s_0, a_0) of
            real states on H-step imagined returns under the greedy policy (see
            `expanded_targets`); 0 keeps the one-step imagined transitions.
        model_noise: std of Gaussian noise added to every imagined observation the Q-learner
            reads (targets, bootstraps and greedy choices), in units of the buffer's
            observation std: a dial for model error (0 = the model as learned).
        termination_fn: a known termination rule replacing the model's termination head.
        hidden, batch_size, lr, gamma: Q-network width (two layers), minibatch size B, Adam
            learning rate and discount.
        target_tau: Polyak rate of the target network per *update*, so its lag counts
            updates, not real steps: with k > 0 values also propagate faster per real step.
            (Measured on CartPole: moving the target once per real step instead made k=20 no
            faster than k=0, since value propagation, not data, was the bottleneck.)
        seed: seeds the Q-network's initial weights.
        device: where the Q-network lives (default: `wmkit.default_device()`).
    """

    def __init__(self, obs_dim: int, action_spec: ActionSpec, model: Any | None = None,
                 planning_updates: int = 0, replay_updates: int = 0, rollout_length: int = 1,
                 value_expansion: int = 0, model_noise: float = 0.0,
                 termination_fn: TerminationFn | None = None, hidden: int = 64,
                 batch_size: int = 64, lr: float = 1e-3,
                 gamma: float = 0.99, target_tau: float = 0.01, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        if not isinstance(action_spec, ActionSpec) or not action_spec.discrete:
            raise ValueError(f"action_spec: expected a Discrete ActionSpec, got {action_spec!r}")
        self.action_spec = action_spec
        self.planning_updates = check_nonnegative_int("planning_updates", planning_updates)
        self.replay_updates = check_nonnegative_int("replay_updates", replay_updates)
        self.rollout_length = check_positive_int("rollout_length", rollout_length)
        self.value_expansion = check_nonnegative_int("value_expansion", value_expansion)
        if self.value_expansion and self.rollout_length != 1:
            raise ValueError(f"rollout_length: expected 1 with value_expansion > 0 (the expansion "
                             f"rolls out its own {value_expansion} steps), got {rollout_length}")
        if not (isinstance(model_noise, (int, float)) and model_noise >= 0):
            raise ValueError(f"model_noise: expected a float >= 0, got {model_noise!r}")
        if self.planning_updates and model is None:
            raise ValueError("model: required when planning_updates > 0 (imagined updates "
                             "need a world model); pass e.g. MLPWorldModel.for_env(env)")
        if model is not None and not isinstance(model, WorldModel):
            raise ValueError(f"model: expected a world model (filter, beliefs, imagine), "
                             f"got {type(model).__name__}")
        self.model, self.termination_fn = model, termination_fn
        self.model_noise = float(model_noise)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.gamma = _check_fraction("gamma", gamma)
        self.target_tau = _check_fraction("target_tau", target_tau)
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr: expected a positive float, got {lr!r}")
        hidden = check_positive_int("hidden", hidden)
        self.device = default_device(device)
        # The initial weights depend on `seed` only, so k=0 and k=20 start from the same net.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.q = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden), nn.ReLU(),
                                   nn.Linear(hidden, action_spec.n)).to(self.device)
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self._online_params = list(self.q.parameters())
        self._target_params = list(self.target.parameters())
        try:  # fused Adam is ~3x faster per step on a CPU (torch >= 2.4)
            self.optimizer = torch.optim.Adam(self._online_params, lr=lr, fused=True)
        except RuntimeError:
            self.optimizer = torch.optim.Adam(self._online_params, lr=lr)
        self.updates = {"real": 0, "imagined": 0}
        self._max_abs_reward = torch.zeros((), device=self.device)
        # `wm.fit` trains the termination head with positive-class weight w (terminations are
        # rare), which lifts its logits by log w: at logit 0 it flags 1.5-3x too many endings.
        # A false "the episode ends here" teaches Q that a safe state is a dead end, so the
        # imagined termination probability is sigmoid(logit - log w); `train_dyna` sets it.
        self.done_logit_offset = 0.0

    @classmethod
    def for_env(cls, env: gym.Env, model: Any | None = None, **kwargs: Any) -> Dyna:
        """A Dyna agent sized for `env` (flat Box observations, Discrete actions)."""
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"env: expected a flat Box observation space, got {space}")
        return cls(space.shape[0], ActionSpec.from_space(env.action_space), model, **kwargs)

    # -- acting --------------------------------------------------------------------------------

    @torch.inference_mode()
    def q_values(self, obs: Any) -> torch.Tensor:
        """Observations (B, D) or (D,) -> Q-values (B, n_actions) or (n_actions,)."""
        obs_t = as_float_tensor("obs", obs, (self.obs_dim,), self.device)
        return self.q(obs_t)

    def __call__(self, obs: Any) -> int:
        """The greedy action for one observation (D,): how the agent is evaluated."""
        return int(self.q_values(obs).reshape(-1).argmax())

    def explore(self, obs: Any, epsilon: float, generator: torch.Generator | None = None) -> int:
        """Epsilon-greedy: a uniformly random action with probability `epsilon`, else greedy."""
        epsilon = _check_fraction("epsilon", epsilon)
        if float(torch.rand((), generator=generator)) < epsilon:
            return int(torch.randint(self.action_spec.n, (), generator=generator))
        return self(obs)

    # -- learning ------------------------------------------------------------------------------

    def update(self, batch: Batch) -> float:
        """One Double-DQN gradient step on a minibatch (see `Batch` for the shapes).

        The online net picks the next action, the target net values it: using one net for
        both overestimates (max of noisy estimates), and imagined data make the noise worse.
        """
        batch = {key: value.to(self.device) for key, value in batch.items()}
        n = len(batch["obs"])
        # One forward pass for obs and next_obs together: on a CPU the per-call overhead of a
        # small net costs more than its arithmetic.
        q_both = self.q(torch.cat([batch["obs"], batch["next_obs"]]))
        value = q_both[:n].gather(1, batch["action"].long().unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_action = q_both[n:].argmax(1, keepdim=True)
            next_value = self.target(batch["next_obs"]).gather(1, next_action).squeeze(1)
            # Only a true termination stops bootstrapping; a time-limit truncation does not.
            alive = 1.0 - batch["terminated"].float()
            target = batch["reward"] + self.gamma * alive * next_value
            target = self.clip_target(target, batch["reward"])
        return self._step(value, target)

    @torch.no_grad()
    def clip_target(self, target: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """Clip Bellman targets (B,) to +-max|r| / (1 - gamma), no return can exceed it.

        Imagined next states are bootstrapped from but never trained on themselves, so their
        values can drift up unchecked and drag every value with them (measured: Q ~ 1,000 -
        2,000 after 2,500 steps with k=20, where 100 is the most CartPole pays); clipping
        targets to the possible range stops that runaway. max|r| is a running max over the
        rewards (any shape) of every minibatch seen, this one included.
        """
        self._max_abs_reward = torch.maximum(self._max_abs_reward,
                                             reward.abs().max().to(self._max_abs_reward.device))
        bound = self._max_abs_reward / (1 - self.gamma)
        return target.clamp(-bound, bound)

    def _step(self, value: torch.Tensor, target: torch.Tensor) -> float:
        """Huber(Q(s, a) (B,), target (B,)), one Adam step, then Polyak the target net."""
        # Huber loss: a wild imagined target moves the net by a bounded step.
        loss = F.smooth_l1_loss(value, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._online_params, self.target_tau)
        return loss.item()

    def _starts(self, buffer: ReplayBuffer, n_starts: int, generator: torch.Generator | None
                ) -> Any:
        """Beliefs (N, ...) at N uniformly sampled real rows of `buffer`."""
        if self.model is None:
            raise ValueError("model: this agent has no world model to imagine with")
        index = torch.randint(len(buffer), (check_positive_int("n_starts", n_starts),),
                              generator=generator)
        return self.model.beliefs(buffer, index)

    def _imagine(self, start: Any, actions: torch.Tensor | Policy, horizon: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Imagine from `start`; -> observations (N, H+1, D), actions (N, H), rewards (N, H)
        and the termination probability of each step (N, H), calibrated (see __init__).

        The rewards are the model's whatever it says about endings (the imagination is run
        without a termination rule): Dyna weighs every step by its own probability of still
        being alive, which a hard cut at logit 0 would get wrong by the BCE weight.
        """
        rollout = self.model.imagine(start, actions, _never_ends, horizon=horizon)
        if self.termination_fn is not None:
            p_done = self.termination_fn(rollout.observations[:, 1:]).float()
        else:
            p_done = torch.sigmoid(rollout.done_logits - self.done_logit_offset)
        return rollout.observations, rollout.actions, rollout.rewards, p_done

    def _noisy(self, obs: torch.Tensor, scale: torch.Tensor,
               generator: torch.Generator | None) -> torch.Tensor:
        """`obs` plus `model_noise` x `scale` Gaussian noise (the model-error dial)."""
        if not self.model_noise:
            return obs
        noise = torch.randn(obs.shape, generator=generator).to(obs.device)
        return obs + self.model_noise * scale.to(obs.device) * noise

    @torch.no_grad()
    def imagine_transitions(self, buffer: ReplayBuffer, n_starts: int,
                            generator: torch.Generator | None = None) -> Batch:
        """Branch `n_starts` short model rollouts from real buffer states; return transitions.

        Starts are the model's beliefs at N sampled buffer rows; actions are uniformly random;
        the whole branch is one batched `imagine`. `terminated` is the model's *probability*
        that the step ends the episode (a float in [0, 1], or 0/1 from `termination_fn`), so a
        target bootstraps from (1 - p) of the next value. A branch stops once termination is
        more likely than not. Returns at most N * H transitions.
        """
        start = self._starts(buffer, n_starts, generator)
        actions = torch.randint(self.action_spec.n, (n_starts, self.rollout_length),
                                generator=generator).to(self.model.device)
        observations, actions, rewards, p_done = self._imagine(start, actions,
                                                               self.rollout_length)
        observations = self._noisy(observations, buffer.stats().obs_std, generator)
        # Step t counts if every earlier step of its branch was more likely alive than not.
        alive = torch.cumprod((p_done < 0.5).int(), dim=1)
        alive = torch.cat([torch.ones_like(alive[:, :1]), alive[:, :-1]], 1).bool()
        steps = {"obs": observations[:, :-1], "action": actions, "reward": rewards,
                 "next_obs": observations[:, 1:], "terminated": p_done}
        return {key: value[alive] for key, value in steps.items()}

    @torch.no_grad()
    def expanded_targets(self, buffer: ReplayBuffer, n_starts: int,
                         generator: torch.Generator | None = None) -> Batch:
        """Model-based value expansion (MVE, Feinberg et al. 2018) from real buffer states.

        Each of `n_starts` real states s_0 takes a uniformly random action a_0; the model then
        follows the *greedy* policy of the online Q-network for H = `value_expansion` steps in
        all (one `imagine` under a policy), and the target of Q(s_0, a_0) is the imagined
        H-step return plus the discounted Double-DQN value of the last state:

            target = r_0 + g(1-p_0) [r_1 + g(1-p_1) [... r_{H-1} + g(1-p_{H-1}) Q'(s_H, a*)]]

        with p_t the model's (calibrated) termination probability. Greedy, not random, actions
        after a_0 make the return one of the policy Q-learning evaluates, so no off-policy
        correction is needed (replayed real n-step returns would need one); and one update
        moves the termination signal H steps back instead of one. Returns obs (N, D),
        action (N,) and target (N,), clipped to max|r| / (1 - gamma) like `update`'s.
        """
        if not self.value_expansion:
            raise ValueError("value_expansion: expected H >= 1 for expanded targets, got 0")
        start = self._starts(buffer, n_starts, generator)
        first_action = torch.randint(self.action_spec.n, (n_starts,), generator=generator)
        scale = buffer.stats().obs_std
        greedy = _FirstThenGreedy(first_action.to(self.model.device),
                                  lambda obs: self.q(self._noisy(obs, scale, generator)
                                                     .to(self.device)).argmax(1))
        observations, _, rewards, p_done = self._imagine(start, greedy, self.value_expansion)
        observations = self._noisy(observations, scale, generator).to(self.device)
        rewards, p_done = rewards.to(self.device), p_done.to(self.device)
        imagined_return = torch.zeros(n_starts, device=self.device)
        discount = torch.ones(n_starts, device=self.device)  # gamma^t * P(alive at t)
        for t in range(self.value_expansion):
            imagined_return += discount * rewards[:, t]
            discount = discount * self.gamma * (1.0 - p_done[:, t])
        last = observations[:, -1]
        next_action = self.q(last).argmax(1, keepdim=True)
        bootstrap = self.target(last).gather(1, next_action).squeeze(1)
        target = imagined_return + discount * bootstrap
        return {"obs": observations[:, 0], "action": first_action.to(self.device),
                "target": self.clip_target(target, rewards)}

    def update_towards(self, obs: torch.Tensor, action: torch.Tensor,
                       target: torch.Tensor) -> float:
        """One gradient step moving Q(obs (B, D), action (B,)) toward given targets (B,)."""
        value = self.q(obs).gather(1, action.long().unsqueeze(1)).squeeze(1)
        return self._step(value, target)

    def train_step(self, buffer: ReplayBuffer, generator: torch.Generator | None = None) -> None:
        """What one real step buys: 1 + `replay_updates` updates on real minibatches, then
        `planning_updates` updates on imagined ones (all imagined in one batched rollout)."""
        for _ in range(1 + self.replay_updates):
            self.update(buffer.sample(self.batch_size, generator))
        self.updates["real"] += 1 + self.replay_updates
        k = self.planning_updates
        if k > 0:
            self._planning(buffer, k, generator)

    def _planning(self, buffer: ReplayBuffer, k: int, generator: torch.Generator | None) -> None:
        """k updates on imagined data: expanded targets (value_expansion > 0) or transitions."""
        if self.value_expansion:
            # k minibatches of B expanded targets, all computed in one batched rollout.
            expanded = self.expanded_targets(buffer, k * self.batch_size, generator)
            for chunk in torch.arange(k * self.batch_size).tensor_split(k):
                self.update_towards(*(expanded[key][chunk] for key in ("obs", "action",
                                                                       "target")))
            self.updates["imagined"] += k
            return
        n_starts = math.ceil(k * self.batch_size / self.rollout_length)
        imagined = self.imagine_transitions(buffer, n_starts, generator)
        n = len(imagined["obs"])
        if n == 0:  # the model ended every branch at once: nothing to learn from this time
            return
        order = torch.randperm(n, generator=generator).to(imagined["obs"].device)
        for chunk in order.tensor_split(min(k, n)):
            self.update({key: value[chunk] for key, value in imagined.items()})
        self.updates["imagined"] += min(k, n)


def _never_ends(next_obs: torch.Tensor) -> torch.Tensor:
    """A termination rule that never fires: Dyna weighs steps by their own probabilities."""
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


class _FirstThenGreedy:
    """A policy for `imagine`: the given first actions (N,), then `greedy(observation)`."""

    def __init__(self, first: torch.Tensor, greedy: Any) -> None:
        self.first, self.greedy, self.started = first, greedy, False

    def __call__(self, state: Imagined) -> torch.Tensor:
        if not self.started:
            self.started = True
            return self.first
        return self.greedy(state.observation).to(self.first.device)


class _EpsilonGreedy:
    """`Dyna.explore` as an agent for the runner, with an `epsilon` that the loop sets."""

    def __init__(self, agent: Dyna, generator: torch.Generator) -> None:
        self.agent, self.generator, self.epsilon = agent, generator, 1.0

    def __call__(self, obs: Any) -> int:
        return self.agent.explore(obs, self.epsilon, self.generator)

    def reset(self) -> None:
        pass

    def reseed(self, seed: int) -> None:
        pass


@dataclass
class DynaLog(LearnLog):
    """What `train_dyna` did: `LearnLog`'s episodes, evaluations, fit histories and data,
    plus how many updates used real and imagined minibatches."""

    real_updates: int = 0
    imagined_updates: int = 0


def epsilon_at(step: int, warmup: int, decay_steps: int, start: float = 1.0,
               end: float = 0.05) -> float:
    """Exploration rate at real step `step`: 1 in the warm-up, then linear to `end`."""
    if step <= warmup:
        return 1.0
    return end + (start - end) * max(0.0, 1 - (step - warmup) / decay_steps)


def train_dyna(env: gym.Env, agent: Dyna, steps: int = 10_000, seed: int = 0,
               warmup: int = 500, epsilon_decay: int = 2_000, epsilon_end: float = 0.05,
               refit_every: int = 250, epochs: int = 20, first_epochs: int = 100,
               eval_every: int = 250, eval_episodes: int = 3, target_return: float | None = None,
               fit_kwargs: dict[str, Any] | None = None, progress: bool = True) -> DynaLog:
    """Train `agent` (and its world model, in place) from at most `steps` real steps.

    The first `warmup` steps act at random; then every real step is followed by
    `agent.train_step` and exploration is epsilon-greedy (1 -> `epsilon_end` over
    `epsilon_decay` steps). When the agent plans (k > 0) its model is fitted on the real
    buffer at the end of the warm-up (`first_epochs` passes: the buffer is small then, and an
    undertrained model's termination head misses most endings) and refitted, warm-started,
    for `epochs` passes every `refit_every` steps.
    Every `eval_every` steps the greedy agent is evaluated on `eval_episodes` separate episodes
    of a copy of the env (never added to the data); with `target_return`, training stops once
    an evaluation's mean reaches it, so `log.solved_at(target_return)` counts real steps.
    One `seed` seeds torch, numpy, the env, exploration and minibatch sampling.
    """
    steps = check_positive_int("steps", steps)
    warmup = check_positive_int("warmup", warmup)
    epsilon_decay = check_positive_int("epsilon_decay", epsilon_decay)
    epsilon_end = _check_fraction("epsilon_end", epsilon_end)
    refit_every = check_positive_int("refit_every", refit_every)
    epochs = check_positive_int("epochs", epochs)
    first_epochs = check_positive_int("first_epochs", first_epochs)
    eval_every = check_positive_int("eval_every", eval_every)
    eval_episodes = check_nonnegative_int("eval_episodes", eval_episodes)
    if not isinstance(agent, Dyna):
        raise ValueError(f"agent: expected a Dyna, got {type(agent).__name__}")
    if warmup > steps:
        raise ValueError(f"warmup: expected at most steps={steps}, got {warmup}")
    seed_everything(seed)
    # One generator for exploration and sampling, owned here so evaluations never disturb it.
    generator = torch.Generator().manual_seed(seed)
    eval_env = copy.deepcopy(env) if eval_episodes else None
    log = DynaLog(buffer=ReplayBuffer.for_env(env, capacity=steps))
    fit_args = {"progress": False, **check_fit_kwargs(fit_kwargs)}
    uses_model = agent.planning_updates > 0
    start_updates = dict(agent.updates)
    explorer = _EpsilonGreedy(agent, generator)  # epsilon 1 throughout the warm-up
    bar = tqdm(run(env, explorer, steps=steps, seed=seed), total=steps,
               desc=f"dyna k={agent.planning_updates}", disable=not progress)
    for real in bar:
        log.buffer.add(*real.transition)
        explorer.epsilon = epsilon_at(real.index + 1, warmup, epsilon_decay, end=epsilon_end)
        if real.episode_over:
            log.episodes.append(Episode(real.index, real.episode_return,
                                        "agent" if real.index > warmup else "warmup"))
            bar.set_postfix(episode_return=real.episode_return)
        if real.index < warmup:
            continue
        if uses_model and (real.index - warmup) % refit_every == 0:
            passes = first_epochs if real.index == warmup else epochs
            log.histories.append(fit(agent.model, log.buffer, seed=seed + real.index,
                                     **{"epochs": passes, **fit_args}))
            agent.done_logit_offset = math.log(done_weight(log.buffer))
        agent.train_step(log.buffer, generator)
        if eval_env is not None and real.index % eval_every == 0:
            result = evaluate(eval_env, agent, eval_episodes, seed=seed + 10_000)
            log.evals.append(Evaluation(real.index, result.returns))
            if target_return is not None and result.mean_return >= target_return:
                break
    log.real_updates = agent.updates["real"] - start_updates["real"]
    log.imagined_updates = agent.updates["imagined"] - start_updates["imagined"]
    return log
