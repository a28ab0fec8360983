"""Real and imagined cart-poles side by side, as a video that plays in the notebook."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation

from .cartpole import _CartPoleArtist, _setup_cartpole_axes, _split_state, _status_text
from .common import ArrayLike, to_numpy


def animate_rollouts(
    real: ArrayLike,
    imagined: ArrayLike | None = None,
    interval: int = 60,
    titles: tuple[str, str] = ("real", "imagined"),
    *,
    x_limit: float = 2.4,
    angle_limit_deg: float = 12,
    show_real_in_imagined: bool = True,
) -> FuncAnimation:
    """Real and imagined cart-poles side by side, one frame per step.

    Args:
        real: (T, 4) or (T, 2) real observations.
        imagined: same shape as ``real`` (from the same start and actions), or None for a
            single panel.
        interval: milliseconds between frames.
        titles: panel titles.
        x_limit, angle_limit_deg: CartPole's termination bounds.
        show_real_in_imagined: a faint grey copy of the real cart-pole in the imagined panel,
            so the drift of the dream is visible directly.

    Returns:
        A FuncAnimation with exactly T frames on a small figure (6 x 1.2 in at 72 dpi, so
        ``to_jshtml()`` of 50 frames is ~0.2 MB). In a notebook, show it with
        ``to_html(anim)``, which also closes the figure so it is not drawn a second time.
    """
    real_np = to_numpy(real)
    if real_np.ndim != 2 or real_np.shape[0] < 1 or real_np.shape[1] not in (2, 4):
        raise ValueError(f"real: expected shape (T, 4) or (T, 2), got {tuple(real_np.shape)}")
    imagined_np = None if imagined is None else to_numpy(imagined)
    if imagined_np is not None and imagined_np.shape != real_np.shape:
        raise ValueError(f"imagined: expected shape {tuple(real_np.shape)} to match real, "
                         f"got {tuple(imagined_np.shape)}")
    panels = [real_np] if imagined_np is None else [real_np, imagined_np]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 1.2), dpi=72,
                             squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.84, wspace=0.04)
    bounds = {"x_limit": x_limit, "angle_limit_deg": angle_limit_deg}
    movers: list[tuple[_CartPoleArtist, np.ndarray, Any]] = []
    for p, (ax, states) in enumerate(zip(axes[0], panels)):
        # Text and thin dotted lines are what make PNG frames big: the video keeps few of them.
        _setup_cartpole_axes(ax, x_limit, numbers=False)
        ax.set_title(titles[p], fontsize=9, pad=2)
        status = _status_text(ax)
        if p == 1 and show_real_in_imagined:
            ghost = _CartPoleArtist(ax, color="0.6", alpha=0.3, label=None,
                                    show_angle_limit=False, zorder=2, **bounds)
            movers.append((ghost, real_np, None))
        artist = _CartPoleArtist(ax, color=f"C{p}", alpha=1.0, label=None,
                                 show_angle_limit=False, **bounds)
        movers.append((artist, states, status))
    clock = fig.text(0.99, 0.97, "", ha="right", va="top", fontsize=8, color="0.3")
    n_steps = real_np.shape[0]

    def update(t: int) -> list[Any]:
        for artist, states, status in movers:
            # Short notes: every glyph costs bytes in each of the T embedded PNG frames.
            problem = artist.set_state(*_split_state(states[t], "observations"), compact=True)
            if status is not None:
                status.set_text(problem)
                status.set_visible(bool(problem))
        clock.set_text(f"t = {t}")
        return []

    update(0)
    return FuncAnimation(fig, update, frames=n_steps, interval=interval, blit=False)


def to_html(anim: FuncAnimation) -> Any:
    """``IPython.display.HTML`` of ``anim.to_jshtml()``; closes the animation's figure.

    Closing matters in a notebook: otherwise the inline backend also draws the figure as a
    still image below the player.
    """
    from IPython.display import HTML  # only needed in notebooks

    html = anim.to_jshtml()
    plt.close(anim._fig)  # FuncAnimation keeps its figure only as this attribute
    return HTML(html)
