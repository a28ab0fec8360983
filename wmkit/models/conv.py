"""Convolutional encoder and decoder for ink frames, and the plain autoencoder built from them.

A frame (`make_env(pixels=True)`: size x size ink cells in [0, 1], flattened) enters
`ConvEncoder`: a 4 x 4 "patchify" stem (each 4 x 4 patch -> `depth` channels, i.e. a convolution
with kernel 4 and stride 4, written as a matrix product), then two convolutions with stride 2,
so 64 x 64 -> 16 x 16 -> 8 x 8 -> 4 x 4 while the channels double (depth, 2 depth, 4 depth),
then one linear layer gives the embedding. `ConvDecoder` mirrors it: linear, two transposed
convolutions, and each cell drawn back as a 4 x 4 patch. This is the shape of DreamerV1-V3's
image encoder and decoder [Hafner et al. 2020-2023], much narrower (CartPole's frames hold a
cart and a pole, not Atari), with the patchify stem of ConvNeXt [Liu et al. 2022] in place of
the first stride-2 layer: on one CPU core a stride-2 convolution at full resolution with one
input channel (and its transposed twin) cost 3-5x more than the whole rest of the network.

- `RSSMWorldModel(..., frame_size=64)` (or `RSSMWorldModel.for_env` on a pixel env) uses them in
  place of its vector encoder and decoder, and `wmkit.fit` trains the whole world model;
- `FrameAutoencoder` is the same encoder and decoder joined at a small code (notebook 11's
  first step: what does one frame tell?), trained by `fit_autoencoder`; `copy_convolutions`
  starts a pixel RSSM's encoder and decoder from its trained convolutions (they then only need
  to learn what moves: on 1,200 random frames, 16 epochs gave the belief's probe R^2 of
  0.97 / 0.92 / 0.83 / 0.87 for x, x_dot, theta, theta_dot, against 0.49 / 0.55 / -0.17 / 0.51
  from scratch).

Frames stay in raw ink units: standardising each pixel, as the vector models do, would divide by
~0 on cells the ink almost never reaches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..train import History, run_epochs, split_indices
from ..utils import check_positive_int

PATCH = 4  # the stem's patch side; two stride-2 layers follow: the frame side divides by 16


def check_frame_size(size: Any) -> int:
    """`size` as an int: a multiple of 16, at least 16 (ValueError naming it otherwise)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 16:
        raise ValueError(f"frame_size: expected a multiple of 16 (e.g. 64), got {size!r}")
    return size


class ConvEncoder(nn.Module):
    """Flat frames (..., size * size) -> embeddings (..., embed).

    4 x 4 patches -> Linear(16 -> depth) + SiLU (a stride-4 convolution), then two
    Conv2d(kernel 4, stride 2, padding 1) + SiLU to 2 depth and 4 depth channels, then
    Linear(4 depth * (size / 16)^2 -> embed).
    """

    def __init__(self, size: int, embed: int, depth: int = 8) -> None:
        super().__init__()
        self.size = check_frame_size(size)
        self.embed = check_positive_int("embed", embed)
        depth = check_positive_int("depth", depth)
        self.depth = depth
        self.stem = nn.Linear(PATCH * PATCH, depth)
        side = size // (4 * PATCH)
        self.convs = nn.Sequential(
            nn.SiLU(), nn.Conv2d(depth, 2 * depth, 4, stride=2, padding=1),
            nn.SiLU(), nn.Conv2d(2 * depth, 4 * depth, 4, stride=2, padding=1),
            nn.SiLU(), nn.Flatten())
        self.out = nn.Linear(4 * depth * side * side, embed)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch = frames.shape[:-1]
        patches = to_patches(frames.reshape(-1, self.size * self.size), self.size)
        grid = self.stem(patches).permute(0, 3, 1, 2)  # (n, depth, size/4, size/4)
        return self.out(self.convs(grid)).reshape(*batch, self.embed)


class ConvDecoder(nn.Module):
    """Features (..., features) -> flat frames (..., size * size), in ink units (unclamped).

    Linear to 4 depth channels of (size / 16)^2, two ConvTranspose2d(kernel 4, stride 2,
    padding 1) to 2 depth and depth channels (SiLU before each), then each cell -> a 4 x 4
    patch by Linear(depth -> 16).
    """

    def __init__(self, features: int, size: int, depth: int = 8) -> None:
        super().__init__()
        self.size = check_frame_size(size)
        self.features = check_positive_int("features", features)
        depth = check_positive_int("depth", depth)
        self.depth = depth
        self.side, self.channels = size // (4 * PATCH), 4 * depth
        self.inp = nn.Linear(features, self.channels * self.side * self.side)
        self.deconvs = nn.Sequential(
            nn.SiLU(), nn.ConvTranspose2d(4 * depth, 2 * depth, 4, stride=2, padding=1),
            nn.SiLU(), nn.ConvTranspose2d(2 * depth, depth, 4, stride=2, padding=1), nn.SiLU())
        self.head = nn.Linear(depth, PATCH * PATCH)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch = features.shape[:-1]
        grid = self.inp(features).reshape(-1, self.channels, self.side, self.side)
        cells = self.deconvs(grid).permute(0, 2, 3, 1)  # (n, size/4, size/4, depth)
        return from_patches(self.head(cells), self.size).reshape(*batch, self.size * self.size)


def to_patches(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size * size) -> (n, size/4, size/4, 16): each cell's 4 x 4 patch, row by row."""
    n, cells = frames.shape[0], size // PATCH
    return frames.reshape(n, cells, PATCH, cells, PATCH).transpose(2, 3).reshape(
        n, cells, cells, PATCH * PATCH)


def from_patches(patches: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size/4, size/4, 16) -> (n, size * size): the inverse of `to_patches`."""
    n, cells = patches.shape[0], size // PATCH
    return patches.reshape(n, cells, cells, PATCH, PATCH).transpose(2, 3).reshape(n, size * size)


class FrameAutoencoder(nn.Module):
    """A frame squeezed through a small code and drawn back: ConvEncoder -> code -> ConvDecoder.

    Not a world model (no actions, no time): what a single frame tells. `encode` gives the
    codes a linear probe reads; `fit_autoencoder` trains it.
    """

    def __init__(self, size: int = 64, code: int = 16, depth: int = 8,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        from ..utils import default_device

        self.size = check_frame_size(size)
        self.code = check_positive_int("code", code)
        self.encoder = ConvEncoder(size, code, depth)
        self.decoder = ConvDecoder(code, size, depth)
        self.to(default_device(device))

    @property
    def device(self) -> torch.device:
        return self.encoder.out.weight.device

    def _frames(self, frames: Any) -> torch.Tensor:
        frames = torch.as_tensor(frames, dtype=torch.float32, device=self.device)
        if frames.ndim != 2 or frames.shape[1] != self.size * self.size:
            raise ValueError(f"frames: expected (N, {self.size * self.size}) flat "
                             f"{self.size} x {self.size} frames, got {tuple(frames.shape)}")
        return frames

    def encode(self, frames: Any) -> torch.Tensor:
        """(N, size * size) frames -> (N, code) codes."""
        return self.encoder(self._frames(frames))

    def forward(self, frames: Any) -> torch.Tensor:
        """(N, size * size) frames -> (N, size * size) reconstructions, in [0, 1]."""
        return self.decoder(self.encode(frames)).clamp(0, 1)

    def loss(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"total", "recon"}: squared error summed over the pixels, mean over frames (the
        reconstruction term the RSSM uses for frames too)."""
        frames = self._frames(frames)
        recon = ((self.decoder(self.encoder(frames)) - frames) ** 2).sum(-1).mean()
        return {"total": recon, "recon": recon}


def fit_autoencoder(model: FrameAutoencoder, frames: Any, epochs: int = 10,
                    batch_size: int = 64, lr: float = 1e-3, holdout: float = 0.1, seed: int = 0,
                    progress: bool = True) -> History:
    """Train `model` on frames (N, size * size) with `wmkit.train.run_epochs` (Adam, History).

    `wmkit.fit` trains world models from a buffer of transitions; an autoencoder has neither,
    so this says only what its epoch is: shuffled minibatches of frames, a random `holdout`
    fraction scored after each epoch.
    """
    data = model._frames(frames)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    train_idx, heldout_idx = split_indices(len(data), holdout, generator)

    def train_batches() -> Iterator[tuple[dict[str, torch.Tensor], float]]:
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        for batch in order.split(batch_size):
            yield model.loss(data[batch]), float(len(batch))

    def heldout_losses() -> dict[str, torch.Tensor]:
        return model.loss(data[heldout_idx])

    return run_epochs(model, train_batches, heldout_losses if len(heldout_idx) else None,
                      epochs=epochs, updates=math.ceil(len(train_idx) / batch_size), lr=lr,
                      weight_decay=0.0, desc="fit FrameAutoencoder", progress=progress)


def copy_convolutions(autoencoder: FrameAutoencoder, encoder: ConvEncoder,
                      decoder: ConvDecoder) -> None:
    """Start `encoder` and `decoder` (e.g. `rssm.encoder`, `rssm.decoder` of a pixel RSSM)
    from `autoencoder`'s trained layers: all but the two linear layers that meet the code,
    whose sizes differ. Frame sizes and depths must match (ValueError otherwise)."""
    for name, mine, theirs in (("encoder", encoder, autoencoder.encoder),
                               ("decoder", decoder, autoencoder.decoder)):
        if (mine.size, mine.depth) != (theirs.size, theirs.depth):
            raise ValueError(f"{name}: expected frames of {theirs.size} and depth "
                             f"{theirs.depth} like the autoencoder's, got {mine.size} and "
                             f"{mine.depth}")
    encoder.stem.load_state_dict(autoencoder.encoder.stem.state_dict())
    encoder.convs.load_state_dict(autoencoder.encoder.convs.state_dict())
    decoder.deconvs.load_state_dict(autoencoder.decoder.deconvs.state_dict())
    decoder.head.load_state_dict(autoencoder.decoder.head.state_dict())
