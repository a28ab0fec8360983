"""Convolutional encoder and decoder for ink frames, and the plain autoencoder built from them.

A frame (`make_env(pixels=True)`: height x width ink cells in [0, 1], flattened; square or not)
enters `ConvEncoder`: a 4 x 4 "patchify" stem (each 4 x 4 patch -> `depth` channels, i.e. a
convolution with kernel 4 and stride 4, written as a matrix product), then two convolutions
with stride 2, so 64 x 64 -> 16 x 16 -> 8 x 8 -> 4 x 4 (32 x 128 -> ... -> 2 x 8) while the
channels double (depth, 2 depth, 4 depth), then one linear layer gives the embedding.
`ConvDecoder` mirrors it: linear, two transposed convolutions, and each cell drawn back as a
4 x 4 patch. This is the shape of DreamerV1-V3's image encoder and decoder [Hafner et al.
2020-2023], much narrower (CartPole's frames hold a cart and a pole, not Atari), with the
patchify stem of ConvNeXt [Liu et al. 2022] in place of the first stride-2 layer: on one CPU
core a stride-2 convolution at full resolution with one input channel (and its transposed
twin) cost 3-5x more than the whole rest of the network.

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

from ..pixels import Size, check_size
from ..train import History, run_epochs, split_indices
from ..utils import check_positive_int

PATCH = 4  # the stem's patch side; two stride-2 layers follow: each frame side divides by 16


class ConvEncoder(nn.Module):
    """Flat frames (..., height * width) -> embeddings (..., embed).

    size: n (n x n frames) or (height, width), each a multiple of 16 (`wmkit.pixels
    .check_size`); `frame_shape` holds it as (height, width).
    4 x 4 patches -> Linear(16 -> depth) + SiLU (a stride-4 convolution), then two
    Conv2d(kernel 4, stride 2, padding 1) + SiLU to 2 depth and 4 depth channels, then
    Linear(4 depth * (height / 16) * (width / 16) -> embed).
    """

    def __init__(self, size: Size, embed: int, depth: int = 8) -> None:
        super().__init__()
        self.frame_shape = check_size(size)
        self.embed = check_positive_int("embed", embed)
        depth = check_positive_int("depth", depth)
        self.depth = depth
        self.stem = nn.Linear(PATCH * PATCH, depth)
        rows, columns = (side // (4 * PATCH) for side in self.frame_shape)  # the last grid
        self.convs = nn.Sequential(
            nn.SiLU(), nn.Conv2d(depth, 2 * depth, 4, stride=2, padding=1),
            nn.SiLU(), nn.Conv2d(2 * depth, 4 * depth, 4, stride=2, padding=1),
            nn.SiLU(), nn.Flatten())
        self.out = nn.Linear(4 * depth * rows * columns, embed)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch = frames.shape[:-1]
        height, width = self.frame_shape
        patches = to_patches(frames.reshape(-1, height * width), self.frame_shape)
        grid = self.stem(patches).permute(0, 3, 1, 2)  # (n, depth, height/4, width/4)
        return self.out(self.convs(grid)).reshape(*batch, self.embed)


class ConvDecoder(nn.Module):
    """Features (..., features) -> flat frames (..., height * width), in ink units (unclamped).

    size: n (n x n frames) or (height, width), as `ConvEncoder` takes it.
    Linear to 4 depth channels of (height / 16) x (width / 16), two ConvTranspose2d(kernel 4,
    stride 2, padding 1) to 2 depth and depth channels (SiLU before each), then each cell -> a
    4 x 4 patch by Linear(depth -> 16).
    """

    def __init__(self, features: int, size: Size, depth: int = 8) -> None:
        super().__init__()
        self.frame_shape = check_size(size)
        self.features = check_positive_int("features", features)
        depth = check_positive_int("depth", depth)
        self.depth = depth
        # The grid the linear layer fills: (height / 16, width / 16) cells of 4 depth channels.
        self.grid = tuple(side // (4 * PATCH) for side in self.frame_shape)
        self.channels = 4 * depth
        self.inp = nn.Linear(features, self.channels * self.grid[0] * self.grid[1])
        self.deconvs = nn.Sequential(
            nn.SiLU(), nn.ConvTranspose2d(4 * depth, 2 * depth, 4, stride=2, padding=1),
            nn.SiLU(), nn.ConvTranspose2d(2 * depth, depth, 4, stride=2, padding=1), nn.SiLU())
        self.head = nn.Linear(depth, PATCH * PATCH)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch = features.shape[:-1]
        height, width = self.frame_shape
        grid = self.inp(features).reshape(-1, self.channels, *self.grid)
        cells = self.deconvs(grid).permute(0, 2, 3, 1)  # (n, height/4, width/4, depth)
        return from_patches(self.head(cells), self.frame_shape).reshape(*batch, height * width)


def to_patches(frames: torch.Tensor, size: Size) -> torch.Tensor:
    """(n, height * width) -> (n, height/4, width/4, 16): each cell's 4 x 4 patch, row by row
    (`size`: n for n x n frames, or (height, width))."""
    rows, columns = (side // PATCH for side in check_size(size))
    return frames.reshape(frames.shape[0], rows, PATCH, columns, PATCH).transpose(2, 3).reshape(
        frames.shape[0], rows, columns, PATCH * PATCH)


def from_patches(patches: torch.Tensor, size: Size) -> torch.Tensor:
    """(n, height/4, width/4, 16) -> (n, height * width): the inverse of `to_patches`."""
    height, width = check_size(size)
    rows, columns = height // PATCH, width // PATCH
    return patches.reshape(patches.shape[0], rows, columns, PATCH, PATCH).transpose(2, 3).reshape(
        patches.shape[0], height * width)


class FrameAutoencoder(nn.Module):
    """A frame squeezed through a small code and drawn back: ConvEncoder -> code -> ConvDecoder.

    Not a world model (no actions, no time): what a single frame tells. `encode` gives the
    codes a linear probe reads; `fit_autoencoder` trains it.
    """

    def __init__(self, size: Size = 64, code: int = 16, depth: int = 8,
                 device: str | torch.device | None = None) -> None:
        super().__init__()
        from ..utils import default_device

        self.frame_shape = check_size(size)
        self.code = check_positive_int("code", code)
        self.encoder = ConvEncoder(size, code, depth)
        self.decoder = ConvDecoder(code, size, depth)
        self.to(default_device(device))

    @property
    def device(self) -> torch.device:
        return self.encoder.out.weight.device

    def _frames(self, frames: Any) -> torch.Tensor:
        frames = torch.as_tensor(frames, dtype=torch.float32, device=self.device)
        height, width = self.frame_shape
        if frames.ndim != 2 or frames.shape[1] != height * width:
            raise ValueError(f"frames: expected (N, {height * width}) flat {height} x {width} "
                             f"frames, got {tuple(frames.shape)}")
        return frames

    def encode(self, frames: Any) -> torch.Tensor:
        """(N, height * width) frames -> (N, code) codes."""
        return self.encoder(self._frames(frames))

    def forward(self, frames: Any) -> torch.Tensor:
        """(N, height * width) frames -> (N, height * width) reconstructions, in [0, 1]."""
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
    """Train `model` on frames (N, height * width) with `wmkit.train.run_epochs` (Adam, History).

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
    whose sizes differ. Frame shapes (height, width) and depths must match (ValueError
    otherwise)."""
    for name, mine, theirs in (("encoder", encoder, autoencoder.encoder),
                               ("decoder", decoder, autoencoder.decoder)):
        if (mine.frame_shape, mine.depth) != (theirs.frame_shape, theirs.depth):
            raise ValueError(f"{name}: expected frames of (height, width) "
                             f"{theirs.frame_shape} and depth {theirs.depth} like the "
                             f"autoencoder's, got {mine.frame_shape} and {mine.depth}")
    encoder.stem.load_state_dict(autoencoder.encoder.stem.state_dict())
    encoder.convs.load_state_dict(autoencoder.encoder.convs.state_dict())
    decoder.deconvs.load_state_dict(autoencoder.decoder.deconvs.state_dict())
    decoder.head.load_state_dict(autoencoder.decoder.head.state_dict())

