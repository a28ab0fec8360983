"""A recurrent state-space model (RSSM): a world model with memory, for partial observations.

The belief is a pair (h, z):

- h, deterministic: a GRU folds the past into it, h_t = f(h_{t-1}, z_{t-1}, a_{t-1});
- z, stochastic: a diagonal Gaussian of `stoch` numbers. The *prior* p(z_t | h_t) guesses z
  from the past alone; the *posterior* q(z_t | h_t, o_t) also sees the observation. Training
  pulls the prior towards the posterior (the KL term), so that imagination, which has only the
  prior, behaves like filtering, which has the posterior.

A decoder maps (h, z) back to the observation, and two heads give the reward and whether the
episode ends. Sources (cited next to each formula below):

- [PlaNet]  Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels",
            arXiv:1811.04551, and its code github.com/google-research/planet (the RSSM:
            deterministic + Gaussian stochastic path, prior and posterior, min std 0.1).
- [DV2]     Hafner et al. 2021, "Mastering Atari with Discrete World Models", arXiv:2010.02193
            (KL balancing; categorical latents, not used here: see the class docstring).
- [DV3]     Hafner et al. 2023, "Mastering Diverse Domains through World Models",
            arXiv:2301.04104v1, first release (KL balancing 0.5 / 0.1 and free bits of 1 nat;
            the later release uses 1.0 / 0.1).

Observations, rewards and the planner's view follow the rest of the kit: inputs and targets
are standardised with the buffer's statistics, `filter` and `imagine` are the only two functions
a planner calls, and imagined observations are decoded back into observation space.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from ..buffer import ReplayBuffer
from ..pixels import Size, check_size, frame_shape
from ..spaces import ActionSpec
from ..utils import as_float_tensor, check_positive_int, default_device
from .base import Imagines
from .conv import ConvDecoder, ConvEncoder
from .normalised import Normalised


@dataclass
class RSSMState:
    """A belief: h (..., deter) and z (..., stoch), same leading shape."""

    h: torch.Tensor
    z: torch.Tensor

    @property
    def features(self) -> torch.Tensor:
        """(..., deter + stoch): what the decoder, the heads and a probe read."""
        return torch.cat([self.h, self.z], dim=-1)

    def __getitem__(self, index: Any) -> RSSMState:
        return RSSMState(self.h[index], self.z[index])

    def __len__(self) -> int:
        """How many beliefs: the leading dimension."""
        return self.h.shape[0]


def _mlp(fan_in: int, hidden: int, fan_out: int, layers: int = 1) -> nn.Sequential:
    """Linear-LayerNorm-SiLU blocks then a linear output ([DV3] uses LayerNorm + SiLU)."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(fan_in if i == 0 else hidden, hidden), nn.LayerNorm(hidden),
                   nn.SiLU()]
    return nn.Sequential(*blocks, nn.Linear(hidden, fan_out))


class RSSMWorldModel(Imagines, Normalised, nn.Module):
    """GRU deterministic path + Gaussian stochastic latent, with decoder, reward and end heads.

    Gaussian latents, not DreamerV2/V3's categorical ones: on CartPole's four numbers they
    reconstructed the observation ~6x more precisely and planned better (docs/RESULTS.md).
    Planning uses the prior's *mean* (not a sample) at every imagined step, and `filter` the
    posterior's mean: the same observations give the same plan, and CartPole is
    deterministic, so the mean is the most likely future. Every fit decays the learning rate
    to a tenth (`fit_defaults`): how a fit *ends* decides whether imagination leans
    (docs/RESULTS.md, "RSSM: how a fit ends").

    Args:
        obs_dim: D, size of one observation (2 for velocity-hidden CartPole).
        action_spec: the env's actions (Discrete actions enter one-hot).
        deter: size of h. stoch: size of z.
        hidden: width of every MLP.
        min_std: floor on every standard deviation of z [PlaNet's code]: 0.1.
        kl_dyn, kl_rep, free_nats: KL balancing weights and free bits [DV3 v1]: 0.5, 0.1, 1.0.
        device: where the weights live (default: `wmkit.default_device()`).
        frame_size: observations are frames, flattened: n for n x n, or (height, width)
            (obs_dim must be height * width; `for_env` sets it for a `make_env(pixels=True)`
            env; `frame_shape` holds it as (height, width)). Then a `ConvEncoder` and
            `ConvDecoder` (wmkit.models.conv) replace the MLPs that read and draw
            observations, as in Dreamer, and frames stay in raw ink units (standardising each
            pixel would divide by ~0 where ink hardly ever falls). None: vectors.
    """

    batches = "sequences"  # `fit` trains it on windows of consecutive rows
    # A fit ends at a tenth of the learning rate (see docs/RESULTS.md, "RSSM: how a fit ends"),
    # without weight decay, with the gradient clipped as [DV3] does.
    fit_defaults = {"final_lr": 1e-4, "weight_decay": 0.0, "grad_clip": 100.0}

    def __init__(self, obs_dim: int, action_spec: ActionSpec, deter: int = 64, stoch: int = 16,
                 hidden: int = 64, min_std: float = 0.1, kl_dyn: float = 0.5,
                 kl_rep: float = 0.1, free_nats: float = 1.0,
                 device: str | torch.device | None = None, frame_size: Size | None = None
                 ) -> None:
        super().__init__()
        self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.frame_shape = None if frame_size is None else check_size(frame_size, "frame_size")
        if self.frame_shape is not None:
            height, width = self.frame_shape
            if height * width != obs_dim:
                raise ValueError(f"frame_size: {height} x {width} frames have {height * width} "
                                 f"pixels, but obs_dim is {obs_dim}")
        self._decode_dreams = True  # see `latent_imagination`
        self.action_spec = action_spec
        self.deter = check_positive_int("deter", deter)
        self.stoch = check_positive_int("stoch", stoch)
        check_positive_int("hidden", hidden)
        for name, value in (("min_std", min_std), ("kl_dyn", kl_dyn), ("kl_rep", kl_rep),
                            ("free_nats", free_nats)):
            if not value >= 0:
                raise ValueError(f"{name}: expected a float >= 0, got {value!r}")
        self.min_std, self.kl_dyn, self.kl_rep, self.free_nats = min_std, kl_dyn, kl_rep, free_nats
        features = deter + stoch
        # [DV3]: the initial h is learned (tanh of a parameter), not fixed at zero.
        self.initial_h = nn.Parameter(torch.zeros(deter))
        self.encoder = _mlp(obs_dim, hidden, hidden) if self.frame_shape is None else \
            ConvEncoder(self.frame_shape, hidden)
        self.img_in = nn.Sequential(nn.Linear(stoch + action_spec.encoded_dim, hidden),
                                    nn.LayerNorm(hidden), nn.SiLU())
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_net = _mlp(deter, hidden, 2 * stoch)
        self.posterior_net = _mlp(deter + hidden, hidden, 2 * stoch)
        self.decoder = _mlp(features, hidden, obs_dim, layers=2) if self.frame_shape is None \
            else ConvDecoder(features, self.frame_shape)
        self.reward_head = _mlp(features, hidden, 1)
        self.continue_head = _mlp(features, hidden, 1)
        # Observation and reward statistics (no deltas: the RSSM decodes observations);
        # `set_normalizer`, `device` and `for_env` come from `Normalised`.
        self.register_norm_buffers(obs_dim, deltas=False)
        self.to(default_device(device))

    # -- the pieces ---------------------------------------------------------------------------

    def _gaussian(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw net output (..., 2 * stoch) -> [mean, std] (..., 2 * stoch).

        [PlaNet's code, planet/models/rssm.py]: std = softplus(raw) + min_stddev (0.1), so no
        latent ever becomes (almost) certain and the KL stays finite.
        """
        mean, raw_std = raw.chunk(2, dim=-1)
        return torch.cat([mean, F.softplus(raw_std) + self.min_std], -1)

    def _latent(self, dist: torch.Tensor, sample: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """[mean, std] (..., 2 * stoch) -> z (..., stoch): a sample, or the mean.

        A sample is reparameterised, z = mean + std * noise, so gradients reach mean and std.
        """
        mean, std = dist.chunk(2, dim=-1)
        if not sample:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return mean + std * noise

    def _normalise(self, obs: torch.Tensor) -> torch.Tensor:
        """What the encoder reads: vectors clamped to the data's range and standardised
        (`Normalised.inputs`)."""
        if self.frame_shape is not None:  # frames: raw ink units (see the class docstring)
            return obs
        return self.inputs(obs)

    def _h0(self, batch_shape: tuple[int, ...]) -> torch.Tensor:
        """The learned initial h, expanded to (*batch_shape, deter)."""
        return torch.tanh(self.initial_h).expand(*batch_shape, self.deter)

    def _step(self, state: RSSMState, action_encoded: torch.Tensor) -> torch.Tensor:
        """h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]) [PlaNet Sec. 3: deterministic state model]."""
        return self.gru(self.img_in(torch.cat([state.z, action_encoded], -1)), state.h)

    def _posterior(self, h: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """q(z_t | h_t, o_t) [PlaNet Sec. 3: encoder]: [mean, std] (..., 2 * stoch)."""
        return self._gaussian(self.posterior_net(torch.cat([h, embed], -1)))

    def _prior(self, h: torch.Tensor) -> torch.Tensor:
        """p(z_t | h_t) [PlaNet Sec. 3: stochastic state model]: [mean, std] (..., 2 * stoch)."""
        return self._gaussian(self.prior_net(h))

    def decode(self, state: RSSMState) -> torch.Tensor:
        """Belief (..., F) -> expected observation (..., D) in raw units ((..., 0) inside
        `latent_imagination`)."""
        if not self._decode_dreams:
            return state.h.new_zeros(*state.h.shape[:-1], 0)
        if self.frame_shape is not None:
            return self.decoder(state.features)
        return self.decoder(state.features) * self.obs_std + self.obs_mean

    @contextmanager
    def latent_imagination(self) -> Iterator[RSSMWorldModel]:
        """Within it, `imagine` skips the decoder: rollouts keep rewards, ends and features,
        and their `observations` are empty, (N, H+1, 0).

        A planner scores imagined sequences by their rewards and ends only, as PlaNet and
        Dreamer do; drawing the frames of 500 candidates x 20 steps would cost far more than
        imagining them. (A `termination_fn`, which reads observations, cannot be used here.)
        """
        previous, self._decode_dreams = self._decode_dreams, False
        try:
            yield self
        finally:
            self._decode_dreams = previous

    @classmethod
    def for_env(cls, env: gym.Env, **kwargs: Any) -> RSSMWorldModel:
        """A model sized for `env`; for a pixel env (`make_env(pixels=True)`), with
        `frame_size` set to its frames' (height, width)."""
        shape = frame_shape(env)
        if shape is not None:
            kwargs.setdefault("frame_size", shape)
        return super().for_env(env, **kwargs)

    def _heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., F) -> reward (...) in raw units, termination logit (...)."""
        reward = self.reward_head(features).squeeze(-1) * self.reward_std + self.reward_mean
        # The continue head predicts "terminated" directly: logit > 0 means the episode ends.
        return reward, self.continue_head(features).squeeze(-1)

    def _embed_starts(self, obs: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, L, E) of the observations (B, L, D) where a belief starts (B, L).

        Only those are read. Vectors: all rows, batched (cheap); frames: only the starts' (each
        frame costs a convolution), zeros elsewhere.
        """
        if self.frame_shape is None:
            return self.encoder(self._normalise(obs))
        embed = obs.new_zeros(*obs.shape[:-1], self.encoder.embed)
        embed[starts] = self.encoder(obs[starts])
        return embed

    def _recon_error(self, state: RSSMState, obs: torch.Tensor, rows: torch.Tensor
                     ) -> torch.Tensor:
        """(B, L) squared error of `state` (B, L, ...) decoded against `obs` (B, L, D), summed
        over dimensions, standardised units (frames: raw ink units). Frames are decoded only
        at `rows` (B, L) bool, the rows that count (zero elsewhere); vectors everywhere."""
        if self.frame_shape is None:
            # Scored against the true observation, unclamped: off the data the error shows.
            return ((self.decoder(state.features) - self.standardise(obs)) ** 2).sum(-1)
        error = obs.new_zeros(obs.shape[:-1])
        error[rows] = ((self.decoder(state.features[rows]) - obs[rows]) ** 2).sum(-1)
        return error

    # -- filtering a whole batch of sequences -------------------------------------------------

    def _check_sequences(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move a batch of windows to the device and check its shapes (ValueError if bad)."""
        missing = {"obs", "action", "next_obs", "is_first"} - set(batch)
        if missing:
            raise ValueError(f"batch: missing fields {sorted(missing)}")
        obs = batch["obs"]
        if obs.ndim != 3 or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"batch: expected obs of shape (B, L, {self.obs_dim}), "
                             f"got {tuple(obs.shape)}")
        if obs.shape[1] < 1:
            raise ValueError("length: expected sequences of at least 1 step, got 0")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        for key in ("obs", "next_obs"):
            if batch[key].shape != obs.shape or not torch.isfinite(batch[key]).all():
                raise ValueError(f"batch: {key} must be finite with shape {tuple(obs.shape)}")
        return batch

    def _chain(self, batch: dict[str, torch.Tensor], sample: bool,
               generator: torch.Generator | None = None) -> dict[str, Any]:
        """Filter B windows of L rows with the posterior, resetting at every episode start.

        Row t is the transition (obs_t, a_t, r_t, next_obs_t). Before it the belief is s_t
        (it has seen obs_t); after it, s'_t = posterior given h' = step(s_t, a_t) and next_obs_t.
        Within an episode next_obs_t is obs_{t+1}, so s_{t+1} = s'_t; at an episode start (and
        at position 0 of every window) s_{t+1} is the initial belief given obs_{t+1} alone.
        """
        obs, next_obs = batch["obs"], batch["next_obs"]
        b, length = obs.shape[:2]
        starts = batch["is_first"].clone().bool()
        starts[:, 0] = True
        h0 = self._h0((b, length))
        # Everything that does not depend on the recurrence runs batched over (B, L).
        start_post = self._posterior(h0, self._embed_starts(obs, starts))
        start_z = self._latent(start_post, sample, generator)
        next_embed = self.encoder(self._normalise(next_obs))
        actions = self.action_spec.encode(batch["action"])
        hs, zs, next_hs, next_zs, next_posts = [], [], [], [], []
        state = RSSMState(h0[:, 0], start_z[:, 0])
        for t in range(length):
            if t > 0:
                reset = starts[:, t, None]
                state = RSSMState(torch.where(reset, h0[:, t], state.h),
                                  torch.where(reset, start_z[:, t], state.z))
            hs.append(state.h)
            zs.append(state.z)
            h = self._step(state, actions[:, t])
            posterior = self._posterior(h, next_embed[:, t])
            state = RSSMState(h, self._latent(posterior, sample, generator))
            next_hs.append(state.h)
            next_zs.append(state.z)
            next_posts.append(posterior)
        return {
            "belief": RSSMState(torch.stack(hs, 1), torch.stack(zs, 1)),
            "next": RSSMState(torch.stack(next_hs, 1), torch.stack(next_zs, 1)),
            "next_posterior": torch.stack(next_posts, 1),
            "starts": starts, "h0": h0, "start_posterior": start_post,
        }

    @torch.no_grad()
    def observe(self, batch: dict[str, torch.Tensor]) -> RSSMState:
        """Beliefs (B, L, ...) after folding in each row's observation (posterior means).

        `batch` holds obs, action, next_obs (B, L, D or B, L[, A]) and is_first (B, L), e.g.
        from `ReplayBuffer.sample_sequences`. Row t's belief equals what `filter` returns after
        the same observations: the state is reset at each `is_first` and at position 0.
        """
        return self._chain(self._check_sequences(batch), sample=False)["belief"]

    def kl(self, posterior: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """KL(q || p) of diagonal Gaussians [mean, std] (..., 2 * stoch), summed -> (...).

        Closed form per dimension: log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2.
        """
        m_q, s_q = posterior.chunk(2, dim=-1)
        m_p, s_p = prior.chunk(2, dim=-1)
        return (torch.log(s_p / s_q) + (s_q**2 + (m_q - m_p) ** 2) / (2 * s_p**2) - 0.5).sum(-1)

    def loss(self, batch: dict[str, torch.Tensor], done_weight: float = 1.0,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss components on B windows of L rows (see `observe` for the fields).

        batch["mask"] (B, L), optional: 1 where a row counts (e.g. 0 for held-out episodes);
        generator: seeds the latent samples. Returns
        "total" and its parts: "recon", "reward", "cont" (termination BCE), "dyn" and "rep"
        (the balanced, free-bits KL terms) and "kl" (the raw KL, a diagnostic).
        """
        batch = self._check_sequences(batch)
        out = self._chain(batch, sample=True, generator=generator)
        b, length = batch["obs"].shape[:2]
        mask = batch["mask"].float() if "mask" in batch else torch.ones(b, length,
                                                                       device=self.device)
        start_mask = mask * out["starts"]
        nxt: RSSMState = out["next"]
        prior = self._prior(nxt.h)
        start_prior = self._prior(out["h0"])
        # [DV3 v1, Sec. "World model learning"]: L_dyn = max(1, KL[sg(q) || p]) trains the
        # prior towards the posterior, L_rep = max(1, KL[q || sg(p)]) the posterior towards the
        # prior. Free bits apply per batch element and step, after summing the KL over every
        # dimension of z: below 1 nat neither term pushes, so the posterior keeps some
        # information for free.
        post = torch.cat([out["next_posterior"], out["start_posterior"]], 1)
        pri = torch.cat([prior, start_prior], 1)
        weights = torch.cat([mask, start_mask], 1)
        kl_dyn = self.kl(post.detach(), pri).clamp_min(self.free_nats)
        kl_rep = self.kl(post, pri.detach()).clamp_min(self.free_nats)
        # Reconstruction: squared error summed over observation dims, in standardised units
        # ([DV3] uses symlog squared error; the buffer's statistics play symlog's role here).
        recon_next = self._recon_error(nxt, batch["next_obs"], mask > 0)
        start_state = RSSMState(out["h0"], out["belief"].z)
        recon_start = self._recon_error(start_state, batch["obs"], start_mask > 0)
        reward, done_logit = self._heads(nxt.features)
        # Reward: squared error in standardised units ([DV3] uses two-hot symlog; CartPole's
        # reward is constant). Continue: Bernoulli log-likelihood [DV3], weighted because
        # terminations are rare (as for the MLP: see wmkit.train.done_weight).
        reward_error = ((reward - batch["reward"]) / self.reward_std) ** 2
        cont = F.binary_cross_entropy_with_logits(
            done_logit, batch["terminated"].float(), reduction="none",
            pos_weight=torch.tensor(done_weight, device=self.device))

        def mean(values: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return (values * w).sum() / w.sum().clamp_min(1.0)

        n_rows = mask.sum() + start_mask.sum()
        losses = {
            "recon": ((recon_next * mask).sum() + (recon_start * start_mask).sum())
            / n_rows.clamp_min(1.0),
            "reward": mean(reward_error, mask),
            "cont": mean(cont, mask),
            "dyn": mean(kl_dyn, weights),
            "rep": mean(kl_rep, weights),
            "kl": mean(self.kl(post, pri).detach(), weights),
        }
        # [DV3 v1, same section]: L = L_pred + 0.5 L_dyn + 0.1 L_rep (later release: 1.0 / 0.1),
        # where L_pred = reconstruction + reward + continue.
        losses["total"] = (losses["recon"] + losses["reward"] + losses["cont"]
                           + self.kl_dyn * losses["dyn"] + self.kl_rep * losses["rep"])
        return losses

    # -- the two functions every planner uses -------------------------------------------------

    @torch.no_grad()
    def filter(self, state: RSSMState | None, action: Any, obs: Any) -> RSSMState:
        """Fold a real observation into the belief: (1, ...) state; None starts an episode.

        `action` is the action taken from `state` (ignored when `state` is None). Uses the
        posterior's mean, so the same observations always give the same belief.
        """
        obs_t = as_float_tensor("obs", obs, (self.obs_dim,), self.device)
        if obs_t.numel() != self.obs_dim:
            raise ValueError(f"obs: expected shape ({self.obs_dim},), got {tuple(obs_t.shape)}")
        embed = self.encoder(self._normalise(obs_t.reshape(1, self.obs_dim)))
        if state is None:
            h = self._h0((1,))
        else:
            if not isinstance(state, RSSMState):
                raise ValueError(f"state: expected an RSSMState or None, got {type(state)}")
            if action is None:
                raise ValueError("action: expected the action taken from `state`, got None")
            encoded = self.action_spec.encode(torch.as_tensor(
                self.action_spec.check(action), device=self.device).reshape(
                1, *self.action_spec.shape))
            h = self._step(state, encoded)
        return RSSMState(h, self._latent(self._posterior(h, embed), sample=False))

    @torch.no_grad()
    def beliefs(self, buffer: ReplayBuffer, index: torch.Tensor, burn_in: int = 16
                ) -> RSSMState:
        """The beliefs (N, ...) right after rows `index` (N,) of `buffer` were observed.

        Each is filtered from a window of the `burn_in` rows up to it (fewer at an episode
        start: the belief resets there, as `filter` does), all N windows in one batch. The
        velocities settle within a few steps, so 16 rows give what the whole episode would.
        """
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
        rows = index[:, None] + torch.arange(-burn_in + 1, 1)  # (N, burn_in), ending at index
        clipped = rows < 0
        window = buffer[rows.clamp_min(0)]
        # Rows before the buffer's start repeat row 0, which starts an episode: resetting at
        # every clipped position leaves the belief of row 0 onwards, as it should be.
        window["is_first"] = window["is_first"] | clipped
        return self.observe(window)[:, -1]

    # -- LatentDynamics: what `Imagines.imagine` steps (the prior's mean at every step) -------

    def initial(self, state: RSSMState, n: int) -> RSSMState:
        """A belief (1 or n, ...) from `filter` or `beliefs` -> n latents."""
        if not isinstance(state, RSSMState):
            raise ValueError(f"state: expected an RSSMState (from filter), got {type(state)}")
        if len(state) not in (1, n):
            raise ValueError(f"state: batch of {len(state)} fits neither 1 nor N={n}")
        return RSSMState(state.h.expand(n, self.deter), state.z.expand(n, self.stoch))

    def step(self, latent: RSSMState, actions: torch.Tensor
             ) -> tuple[RSSMState, torch.Tensor, torch.Tensor, None]:
        """h <- GRU(h, [z, a]), z <- mean of p(z | h); the heads read the new belief."""
        h = self._step(latent, self.action_spec.encode(actions))
        latent = RSSMState(h, self._latent(self._prior(h), sample=False))
        reward, done_logit = self._heads(latent.features)
        return latent, reward, done_logit, None

    def features(self, latent: RSSMState) -> torch.Tensor:
        """(..., deter + stoch): the belief, what an actor or critic reads."""
        return latent.features
