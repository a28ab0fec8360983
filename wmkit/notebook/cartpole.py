"""Cart-poles drawn with matplotlib: one state, or a trajectory as fading ghosts.

A cart-pole observation is ``(x, x_dot, theta, theta_dot)`` (D=4) or, with the velocities
hidden, ``(x, theta)`` (D=2). ``theta`` is in radians, positive when the pole leans right.
Imagined states far outside CartPole's bounds are still drawn (pinned, clipped) and marked red.
Every function returns the Axes it drew on, accepts ``ax=``, and never calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyBboxPatch

from .common import OUT_OF_BOUNDS_COLOR, ArrayLike, new_axes, to_numpy

# Cart-pole geometry in world units (metres), matching gymnasium's renderer:
# the pole's full length is 2 * 0.5 = 1.0; the cart is small next to the 4.8 m track.
_POLE_LENGTH = 1.0
_CART_WIDTH, _CART_HEIGHT = 0.5, 0.28
_WHEEL_RADIUS = 0.06
_CART_BOTTOM = 2 * _WHEEL_RADIUS
_PIVOT_Y = _CART_BOTTOM + _CART_HEIGHT


def _split_state(obs: np.ndarray, name: str) -> tuple[float, float]:
    """(x, theta) from a (4,) or (2,) observation; ValueError naming ``name`` otherwise."""
    if obs.ndim != 1 or obs.shape[0] not in (2, 4):
        raise ValueError(
            f"{name}: expected shape (4,) for (x, x_dot, theta, theta_dot) or (2,) for "
            f"(x, theta), got {tuple(obs.shape)}"
        )
    return float(obs[0]), float(obs[2] if obs.shape[0] == 4 else obs[1])


def _bounds_problem(x: float, theta: float, x_limit: float, angle_limit_deg: float,
                    compact: bool = False) -> str:
    """Why this state is outside CartPole's termination bounds ('' when it is inside)."""
    if not (np.isfinite(x) and np.isfinite(theta)):
        return f"not finite: x = {x:.3g}, θ = {theta:.3g} rad"
    degrees, problems = np.degrees(theta), []
    if abs(x) > x_limit:
        problems.append(f"|x| = {abs(x):.3g} > {x_limit:g}" if compact
                        else f"x = {x:.3g} (limit ±{x_limit:g})")
    if abs(degrees) > angle_limit_deg:
        problems.append(f"|θ| = {abs(degrees):.3g}° > {angle_limit_deg:g}°" if compact
                        else f"θ = {degrees:.3g}° (limit ±{angle_limit_deg:g}°)")
    if compact:
        return "\n".join(problems)
    return "out of bounds: " + ", ".join(problems) if problems else ""


def _setup_cartpole_axes(ax: Axes, x_limit: float, numbers: bool = True) -> None:
    """Track, ±x_limit posts (with numbers) and a fixed view; drawn once per Axes."""
    if any(line.get_gid() == "track" for line in ax.lines):
        return
    half_width = x_limit + 1.0
    ax.plot([-half_width, half_width], [0, 0], color="0.35", lw=1.5, gid="track", zorder=1)
    for side in (-1, 1):
        ax.plot([side * x_limit] * 2, [-0.06, 0.5], color=OUT_OF_BOUNDS_COLOR, lw=1.2,
                ls="--", gid="limit", zorder=1)
        if numbers:
            ax.text(side * x_limit, -0.1, f"{side * x_limit:+g}", ha="center", va="top",
                    fontsize=7, color=OUT_OF_BOUNDS_COLOR)
    if numbers:
        ax.text(0, -0.1, "0", ha="center", va="top", fontsize=7, color="0.35")
    ax.plot([0, 0], [-0.04, 0.04], color="0.35", lw=1, zorder=1)
    ax.set_xlim(-half_width, half_width)
    ax.set_ylim(-0.32 if numbers else -0.1, _PIVOT_Y + _POLE_LENGTH + 0.12)
    ax.set_aspect("equal")
    ax.set_axis_off()


class _CartPoleArtist:
    """The artists of one cart-pole, movable with ``set_state`` (used by drawings and videos)."""

    def __init__(self, ax: Axes, *, color: Any, alpha: float, label: str | None, x_limit: float,
                 angle_limit_deg: float, show_angle_limit: bool, zorder: float = 3) -> None:
        self.x_limit, self.angle_limit_deg = x_limit, angle_limit_deg
        self.cart = FancyBboxPatch((0, _CART_BOTTOM), _CART_WIDTH, _CART_HEIGHT,
                                   boxstyle="round,pad=0,rounding_size=0.05", facecolor=color,
                                   edgecolor="0.15", lw=1, alpha=alpha, gid="cart",
                                   zorder=zorder)
        ax.add_patch(self.cart)
        self.wheels = [Circle((0, _WHEEL_RADIUS), _WHEEL_RADIUS, color="0.2", alpha=alpha,
                              zorder=zorder) for _ in range(2)]
        for wheel in self.wheels:
            ax.add_patch(wheel)
        # The label sits on the pole: a line makes a clean legend entry in the cart's colour.
        (self.pole,) = ax.plot([], [], color=color, lw=4, alpha=alpha, solid_capstyle="round",
                               label=label, gid="pole", zorder=zorder + 0.1)
        self.pivot = Circle((0, _PIVOT_Y), 0.035, color="0.15", alpha=alpha, zorder=zorder + 0.2)
        ax.add_patch(self.pivot)
        self.angle_guides = [
            ax.plot([], [], color="0.55", lw=0.8, ls=":", gid="angle_limit", zorder=zorder - 0.5)[0]
            for _ in range(2)
        ] if show_angle_limit else []
        # Shown only when the cart is pushed back into view: points to where it really is.
        (self.offscreen,) = ax.plot([], [], ls="none", marker=">", ms=7,
                                    color=OUT_OF_BOUNDS_COLOR, gid="offscreen", zorder=zorder)

    def set_state(self, x: float, theta: float, compact: bool = False) -> str:
        """Move to (x, theta); returns why the state is out of bounds ('' when in bounds)."""
        problem = _bounds_problem(x, theta, self.x_limit, self.angle_limit_deg, compact)
        x_draw, theta_draw, pinned_side = _drawable(x, theta, self.x_limit)
        self.cart.set_x(x_draw - _CART_WIDTH / 2)
        self.cart.set_edgecolor(OUT_OF_BOUNDS_COLOR if problem else "0.15")
        self.cart.set_linestyle("--" if problem else "-")
        self.cart.set_linewidth(1.8 if problem else 1.0)
        self.cart.set_hatch("///" if pinned_side else None)
        for wheel, side in zip(self.wheels, (-1, 1)):
            wheel.set_center((x_draw + side * _CART_WIDTH / 4, _WHEEL_RADIUS))
        self.pole.set_data(*zip((x_draw, _PIVOT_Y), _pole_tip(x_draw, theta_draw)))
        self.pivot.set_center((x_draw, _PIVOT_Y))
        limit, reach = np.radians(self.angle_limit_deg), 1.05 * _POLE_LENGTH
        for guide, side in zip(self.angle_guides, (-1, 1)):  # none or two
            guide.set_data([x_draw, x_draw + reach * np.sin(side * limit)],
                           [_PIVOT_Y, _PIVOT_Y + reach * np.cos(limit)])
        if pinned_side:
            self.offscreen.set_data([pinned_side * (self.x_limit + 0.93)], [_CART_BOTTOM + 0.14])
            self.offscreen.set_marker(">" if pinned_side > 0 else "<")
        else:
            self.offscreen.set_data([], [])
        return problem


def _drawable(x: float, theta: float, x_limit: float) -> tuple[float, float, int]:
    """Finite, on-screen (x, theta) for drawing, and the side (-1/+1, 0 if none) x was pinned to.

    x is pinned just past the track's end; theta is wrapped into [-pi, pi) and then clipped to
    ±pi/2 (lying flat): a pole pointing below the track would leave the picture, and a real
    episode ends at 12 degrees, so such angles are imagined and marked in red anyway. NaN
    draws as 0 (marked as well).
    """
    x_safe, theta_safe = np.nan_to_num([x, theta], nan=0.0, posinf=1e300, neginf=-1e300)
    x_max = x_limit + 0.55
    x_draw = float(np.clip(x_safe, -x_max, x_max))
    theta_draw = float(np.clip(np.remainder(theta_safe + np.pi, 2 * np.pi) - np.pi,
                               -np.pi / 2, np.pi / 2))
    return x_draw, theta_draw, int(np.sign(x_safe)) if x_draw != x_safe else 0


def _pole_tip(x_draw: float, theta_draw: float) -> tuple[float, float]:
    return (x_draw + _POLE_LENGTH * np.sin(theta_draw),
            _PIVOT_Y + _POLE_LENGTH * np.cos(theta_draw))


def _status_text(ax: Axes, text: str = "") -> Any:
    """A red note in the top-left corner, below any notes already there."""
    below = sum(t.get_gid() == "out_of_bounds" for t in ax.texts)
    return ax.text(0.01, 0.98 - 0.11 * below, text, transform=ax.transAxes, ha="left",
                   va="top", fontsize=7, color=OUT_OF_BOUNDS_COLOR, gid="out_of_bounds", zorder=10,
                   bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})


def draw_cartpole(
    obs: ArrayLike,
    ax: Axes | None = None,
    *,
    color: Any = "C0",
    alpha: float = 1.0,
    label: str | None = None,
    x_limit: float = 2.4,
    angle_limit_deg: float = 12,
    show_angle_limit: bool = True,
) -> Axes:
    """Draw one cart-pole state: track, ±x_limit posts, cart and pole.

    Args:
        obs: (4,) ``(x, x_dot, theta, theta_dot)`` or (2,) ``(x, theta)``; velocities are not
            drawn. Imagined states may be far outside the real bounds: x is pinned just past
            the track's end (cart hatched, arrow towards the real side), theta is wrapped and
            clipped to ±90°, and the state is marked "out of bounds" in red with its true values.
        ax: Axes to draw into (more carts can be added to the same Axes); a new one if None.
        color, alpha, label: cart and pole colour, opacity, legend label.
        x_limit, angle_limit_deg: CartPole's termination bounds (drawn: posts at ±x_limit and
            dotted guides at ±angle_limit_deg around the pole).
        show_angle_limit: draw the dotted ±angle_limit_deg guides.

    Returns:
        The Axes.
    """
    state = to_numpy(obs)
    x, theta = _split_state(state, "obs")
    ax = ax if ax is not None else new_axes((6, 1.9))
    _setup_cartpole_axes(ax, x_limit)
    artist = _CartPoleArtist(ax, color=color, alpha=alpha, label=label, x_limit=x_limit,
                             angle_limit_deg=angle_limit_deg, show_angle_limit=show_angle_limit)
    problem = artist.set_state(x, theta)
    if problem:
        _status_text(ax, f"{label}: {problem}" if label else problem)
    return ax


def draw_cartpoles(
    observations: ArrayLike,
    ax: Axes | None = None,
    *,
    color: Any = "C0",
    alpha: float = 1.0,
    min_alpha: float = 0.12,
    label: str | None = None,
    max_ghosts: int = 12,
    x_limit: float = 2.4,
    angle_limit_deg: float = 12,
) -> Axes:
    """Overlay a trajectory of cart-pole states as fading ghosts, plus the pole tip's path.

    Args:
        observations: (T, 4) or (T, 2), e.g. one imagined trajectory. Opacity rises from
            ``min_alpha`` (first state) to ``alpha`` (last state).
        ax: Axes to draw into; a new one if None.
        color, label: colour of every ghost; legend label (on the last state).
        max_ghosts: at most this many states are drawn (evenly spaced, first and last kept);
            the tip path always uses every state.
        x_limit, angle_limit_deg: CartPole's termination bounds.

    Returns:
        The Axes. The first out-of-bounds step, if any, is named in red.
    """
    states = to_numpy(observations)
    if states.ndim != 2 or states.shape[0] < 1 or states.shape[1] not in (2, 4):
        raise ValueError(f"observations: expected shape (T, 4) or (T, 2) with T >= 1, "
                         f"got {tuple(states.shape)}")
    if max_ghosts < 1:
        raise ValueError(f"max_ghosts: expected >= 1, got {max_ghosts}")
    ax = ax if ax is not None else new_axes((6, 1.9))
    _setup_cartpole_axes(ax, x_limit)
    n_steps = states.shape[0]
    path = [_split_state(state, f"observations[{t}]") for t, state in enumerate(states)]
    shown = np.unique(np.linspace(0, n_steps - 1, min(n_steps, max_ghosts)).round().astype(int))
    for t in shown:
        fade = 1.0 if n_steps == 1 else t / (n_steps - 1)
        last = t == n_steps - 1
        artist = _CartPoleArtist(ax, color=color, alpha=min_alpha + fade * (alpha - min_alpha),
                                 label=label if last else None, x_limit=x_limit,
                                 angle_limit_deg=angle_limit_deg, show_angle_limit=last,
                                 zorder=3 + t / n_steps)
        artist.set_state(*path[t])
    problems = [_bounds_problem(x, theta, x_limit, angle_limit_deg) for x, theta in path]
    first_bad = next((t for t, problem in enumerate(problems) if problem), None)
    tips = [_pole_tip(*_drawable(x, theta, x_limit)[:2]) for x, theta in path]
    tip_x, tip_y = np.array(tips).T
    ax.plot(tip_x, tip_y, color=color, lw=1, alpha=0.6, gid="tip_path", zorder=2)
    if first_bad is not None:
        where = f"{label}, step {first_bad}" if label else f"step {first_bad}"
        _status_text(ax, f"{where}: {problems[first_bad]}")
    return ax
