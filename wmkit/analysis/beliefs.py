"""What an RSSM's belief holds: beliefs along a buffer, reconstructions, KL per step."""

from __future__ import annotations

import torch

from ..buffer import ReplayBuffer
from ..models.rssm import RSSMState, RSSMWorldModel
from ..utils import check_positive_int


@torch.no_grad()
def buffer_beliefs(model: RSSMWorldModel, buffer: ReplayBuffer) -> RSSMState:
    """The belief at every row of `buffer` (N, ...), filtered episode by episode.

    The whole buffer is one sequence; the state resets at each episode start, so this is what
    `filter` would give, one episode at a time.
    """
    data = buffer.tensors()
    return model.observe({k: v[None] for k, v in data.items()})[0]


@torch.no_grad()
def reconstructions(model: RSSMWorldModel, buffer: ReplayBuffer) -> torch.Tensor:
    """(N, D) every row's observation decoded back from the belief that has just seen it.

    Compare with `buffer.tensors()["obs"]`: a large error means the posterior does not carry
    the observation (the belief cannot be trusted); a small one says nothing yet about the
    prior, which is what imagination runs on (see `compounding_error` for that).
    """
    return model.decode(buffer_beliefs(model, buffer)).cpu()


@torch.no_grad()
def kl_per_step(model: RSSMWorldModel, buffer: ReplayBuffer, max_steps: int = 30
                ) -> torch.Tensor:
    """(max_steps,) mean KL(posterior || prior) in nats by steps since the episode start.

    Step 0 is the first observation (only the initial prior: large); later steps show how much
    each new observation still surprises the model. All near 0 would mean posterior collapse
    (observations ignored); staying high would mean the prior never learned the dynamics.
    Steps no episode reaches are NaN.
    """
    max_steps = check_positive_int("max_steps", max_steps)
    data = {k: v[None] for k, v in buffer.tensors().items()}
    batch = model._check_sequences(data)
    out = model._chain(batch, sample=False)
    # KL of the belief at row t: the initial prior at starts, else the prior after a step.
    prior_after_step = model._prior(out["next"].h)
    post_after_step = out["next_posterior"]
    kl_next = model.kl(post_after_step, prior_after_step)[0]  # KL of s'_t = s_{t+1}
    kl_start = model.kl(out["start_posterior"], model._prior(out["h0"]))[0]
    starts = out["starts"][0]
    kl_rows = torch.where(starts, kl_start, torch.cat([kl_start[:1], kl_next[:-1]])).cpu()
    # Steps since the episode start: the buffer knows where its episodes begin.
    firsts = torch.tensor([first for first, _ in buffer.episode_bounds()])
    since = torch.arange(len(buffer)) - firsts[buffer.episode_ids()]
    kept = since < max_steps
    totals = torch.zeros(max_steps).index_add_(0, since[kept], kl_rows[kept])
    counts = torch.zeros(max_steps).index_add_(0, since[kept], torch.ones(int(kept.sum())))
    return torch.where(counts > 0, totals / counts.clamp_min(1), float("nan"))
