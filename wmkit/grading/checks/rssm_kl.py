"""Exercise 06: the RSSM's KL between posterior and prior, balanced and with free bits."""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F

from ...models.rssm import RSSMWorldModel
from ..core import CheckFailed, Submitted, exercise
from .common import call_student, expect_close, expect_tensor, generator, observe_student, rngs

EX = exercise("06_rssm_kl", "The RSSM's KL, balanced, with free bits")

# The library's KL uses nothing of `self`: captured as a plain function of (posterior, prior).
_library_kl = RSSMWorldModel.kl
EX.counterparts("gaussian_kl", RSSMWorldModel.kl)
EX.counterparts("kl_losses", RSSMWorldModel.kl, RSSMWorldModel.loss)


def reference_kl(posterior: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    return _library_kl(None, posterior, prior)  # type: ignore[arg-type]


def random_pair(rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior and prior [mean, std] (..., 2 * stoch): some pairs close, some far apart."""
    stoch = rng.randint(2, 6)
    shape = (rng.randint(3, 8),) if rng.random() < 0.5 else (rng.randint(2, 4), rng.randint(2, 5))
    g = generator(rng)
    prior_mean = torch.randn(*shape, stoch, generator=g)
    prior_std = F.softplus(torch.randn(*shape, stoch, generator=g)) + 0.1
    # Per element: a small or a large step away from the prior, so KLs land on both sides of
    # the free-bits threshold.
    scale = torch.where(torch.rand(*shape, 1, generator=g) < 0.5, 0.1, 1.5)
    post_mean = prior_mean + scale * torch.randn(*shape, stoch, generator=g)
    post_std = prior_std * torch.exp(scale * 0.5 * torch.randn(*shape, stoch, generator=g))
    return torch.cat([post_mean, post_std], -1), torch.cat([prior_mean, prior_std], -1)


# -- part (a): gaussian_kl ----------------------------------------------------------------------

PART_A = "gaussian_kl"


def _kl(student: Submitted, posterior: torch.Tensor, prior: torch.Tensor) -> Any:
    return call_student(student, posterior.clone(), prior.clone())


@EX.check(PART_A, 1, "sums over the latent dimensions: (..., 2 * stoch) -> (...)")
def kl_shape(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        posterior, prior = random_pair(rng)
        expect_tensor(_kl(student, posterior, prior), "gaussian_kl(posterior, prior)",
                      tuple(prior.shape[:-1]))


@EX.check(PART_A, 1, "zero when the posterior equals the prior")
def kl_zero(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        _, prior = random_pair(rng)
        expect_close(_kl(student, prior, prior), torch.zeros(prior.shape[:-1]),
                     "gaussian_kl(p, p)", atol=1e-5)


@EX.check(PART_A, 2, "the closed-form KL(q || p) of diagonal Gaussians")
def kl_matches(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        posterior, prior = random_pair(rng)
        expect_close(_kl(student, posterior, prior), reference_kl(posterior, prior),
                     "gaussian_kl(posterior, prior)",
                     hint="per dimension log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) "
                          "- 1/2; the first half of the last axis is the mean, the second the "
                          "std (KL is not symmetric: q is the posterior)")


# -- part (b): kl_losses ------------------------------------------------------------------------

PART_B = "kl_losses"


def _losses(student: Submitted, posterior: torch.Tensor, prior: torch.Tensor,
            free_nats: float) -> tuple[torch.Tensor, torch.Tensor, list[list[torch.Tensor]]]:
    """(dyn, rep, [[d dyn/d posterior, d dyn/d prior], [d rep/d posterior, d rep/d prior]])."""
    called = observe_student(student, posterior, prior, free_nats, grads_of=[0, 1])
    result = called.result
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(f"kl_losses(...): expected a tuple (dyn, rep), got "
                          f"{type(result).__name__}")
    shape = tuple(prior.shape[:-1])
    grads = []
    for index in (0, 1):  # zeros where a loss does not reach an input (detached, unused)
        found = called.grads.get(index) or {}
        grads.append([found.get(label, torch.zeros_like(x))
                      for label, x in (("0", posterior), ("1", prior))])
    return (expect_tensor(result[0], "dyn", shape), expect_tensor(result[1], "rep", shape),
            grads)


def _inputs(rng: random.Random) -> tuple[torch.Tensor, torch.Tensor, float]:
    posterior, prior = random_pair(rng)
    kl = reference_kl(posterior, prior)
    # Free bits between the smallest and largest KL: some elements clamp, some do not.
    low, high = float(kl.min()), float(kl.max())
    free_nats = low + (high - low) * rng.uniform(0.3, 0.7)
    return posterior.requires_grad_(), prior.requires_grad_(), free_nats


@EX.check(PART_B, 2, "values: both are max(free_nats, KL) per element")
def losses_values(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        posterior, prior, free_nats = _inputs(rng)
        expected = reference_kl(posterior, prior).clamp_min(free_nats).detach()
        dyn, rep, _ = _losses(student, posterior, prior, free_nats)
        hint = "clamp the KL from below at free_nats (KL.clamp_min(free_nats))"
        expect_close(dyn, expected, "dyn", hint=hint)
        expect_close(rep, expected, "rep", hint=hint)


@EX.check(PART_B, 1, "free bits: no gradient where the KL is below free_nats")
def losses_free_bits(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        posterior, prior, free_nats = _inputs(rng)
        below = reference_kl(posterior, prior).detach() < free_nats
        _, _, (to_dyn, to_rep) = _losses(student, posterior, prior, free_nats)
        both = [a + b for a, b in zip(to_dyn, to_rep)]  # the gradient of dyn + rep
        for name, grads in (("dyn + rep", both),):
            if any(g[below].abs().max() > 0 for g in grads):
                raise CheckFailed(f"{name}: elements with KL < free_nats still get a gradient; "
                                  "below the threshold the loss must be the constant free_nats")
            if not any(g[~below].abs().max() > 0 for g in grads):
                raise CheckFailed(f"{name}: no gradient at all, even where KL > free_nats")


@EX.check(PART_B, 1, "dyn trains only the prior (the posterior is detached)")
def losses_dyn_trains_prior(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        posterior, prior, free_nats = _inputs(rng)
        _, _, ((to_posterior, to_prior), _) = _losses(student, posterior, prior, free_nats)
        if to_posterior.abs().max() > 0:
            raise CheckFailed("dyn sends gradient into the posterior: use posterior.detach() "
                              "in the dynamics term")
        if to_prior.abs().max() == 0:
            raise CheckFailed("dyn sends no gradient into the prior: it is what dyn trains")


@EX.check(PART_B, 1, "rep trains only the posterior (the prior is detached)")
def losses_rep_trains_posterior(student: Submitted, seed: int) -> None:
    for rng in rngs(seed):
        posterior, prior, free_nats = _inputs(rng)
        _, _, (_, (to_posterior, to_prior)) = _losses(student, posterior, prior, free_nats)
        if to_prior.abs().max() > 0:
            raise CheckFailed("rep sends gradient into the prior: use prior.detach() in the "
                              "representation term")
        if to_posterior.abs().max() == 0:
            raise CheckFailed("rep sends no gradient into the posterior: it is what rep trains")
