"""Figures for world models on CartPole: cart-pole drawings, losses, rollouts, returns, plans.

Everything here is plain matplotlib. Inputs may be torch tensors or numpy arrays, and the
library's objects (``Rollout``, ``History``, ``LearnLog``, ``Plan``) are read by attribute
only, so this module imports nothing else from wmkit and works on its own.

Every plotting function returns the ``Axes`` (or ``Figure``) it drew on, accepts ``ax=`` (or
``fig=``) to draw into one you own, and never calls ``plt.show()``. In a notebook the figure
shows at the end of the cell; inside an ``ipywidgets.Output`` call ``plt.show()`` yourself.

A cart-pole observation is ``(x, x_dot, theta, theta_dot)`` (D=4) or, with the velocities
hidden, ``(x, theta)`` (D=2). ``theta`` is in radians, positive when the pole leans right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyBboxPatch

__all__ = [
    "animate_rollouts",
    "draw_cartpole",
    "draw_cartpoles",
    "finish_learning_axes",
    "plot_compounding_error",
    "plot_losses",
    "plot_plan",
    "plot_returns",
    "plot_trajectories",
    "to_html",
]

ArrayLike = Any
"""A numpy array, a torch tensor (any device), or anything ``np.asarray`` accepts."""

CARTPOLE_NAMES = ("cart position", "cart velocity", "pole angle", "pole angular velocity")

# Cart-pole geometry in world units (metres), matching gymnasium's renderer:
# the pole's full length is 2 * 0.5 = 1.0; the cart is small next to the 4.8 m track.
_POLE_LENGTH = 1.0
_CART_WIDTH, _CART_HEIGHT = 0.5, 0.28
_WHEEL_RADIUS = 0.06
_CART_BOTTOM = 2 * _WHEEL_RADIUS
_PIVOT_Y = _CART_BOTTOM + _CART_HEIGHT
_OUT_OF_BOUNDS_COLOR = "#c0392b"


def _to_numpy(x: ArrayLike) -> np.ndarray:
    """A float numpy copy of a torch tensor (any device, any float dtype) or array-like."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()  # bfloat16 / float16 have no (or a lossy) numpy counterpart
        x = x.numpy()
    return np.asarray(x, dtype=float)


def _new_axes(figsize: tuple[float, float]) -> Axes:
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


# --------------------------------------------------------------------------- cart-pole drawing


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
        ax.plot([side * x_limit] * 2, [-0.06, 0.5], color=_OUT_OF_BOUNDS_COLOR, lw=1.2,
                ls="--", gid="limit", zorder=1)
        if numbers:
            ax.text(side * x_limit, -0.1, f"{side * x_limit:+g}", ha="center", va="top",
                    fontsize=7, color=_OUT_OF_BOUNDS_COLOR)
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
                                    color=_OUT_OF_BOUNDS_COLOR, gid="offscreen", zorder=zorder)

    def set_state(self, x: float, theta: float, compact: bool = False) -> str:
        """Move to (x, theta); returns why the state is out of bounds ('' when in bounds)."""
        problem = _bounds_problem(x, theta, self.x_limit, self.angle_limit_deg, compact)
        x_draw, theta_draw, pinned_side = _drawable(x, theta, self.x_limit)
        self.cart.set_x(x_draw - _CART_WIDTH / 2)
        self.cart.set_edgecolor(_OUT_OF_BOUNDS_COLOR if problem else "0.15")
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
                   va="top", fontsize=7, color=_OUT_OF_BOUNDS_COLOR, gid="out_of_bounds", zorder=10,
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
    state = _to_numpy(obs)
    x, theta = _split_state(state, "obs")
    ax = ax if ax is not None else _new_axes((6, 1.9))
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
    states = _to_numpy(observations)
    if states.ndim != 2 or states.shape[0] < 1 or states.shape[1] not in (2, 4):
        raise ValueError(f"observations: expected shape (T, 4) or (T, 2) with T >= 1, "
                         f"got {tuple(states.shape)}")
    if max_ghosts < 1:
        raise ValueError(f"max_ghosts: expected >= 1, got {max_ghosts}")
    ax = ax if ax is not None else _new_axes((6, 1.9))
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


# --------------------------------------------------------------------------- training curves


def plot_losses(history: Any, ax: Axes | None = None, log: bool = True) -> Axes:
    """Train (solid) and held-out (dashed) loss per component and epoch.

    Args:
        history: object with ``train`` and ``heldout``: dict[str, list[float]], one value per
            epoch, keys like "total", "delta", "reward", "done" ("total" is drawn thickest).
            ``heldout`` may be empty.
        ax: Axes to draw into; a new one if None.
        log: log y-axis. Losses that reach zero or below (a Gaussian NLL can) switch it to
            'symlog', which is linear near zero, so no point disappears.

    Returns:
        The Axes: one line per (component, split).
    """
    train, heldout = getattr(history, "train", None), getattr(history, "heldout", None)
    if not isinstance(train, Mapping) or not isinstance(heldout, Mapping) or not train:
        raise ValueError("history: expected an object with .train and .heldout dicts "
                         f"(name -> list of per-epoch losses), got {type(history).__name__}")
    ax = ax if ax is not None else _new_axes((6, 3.6))
    names = sorted(set(train) | set(heldout), key=lambda k: (k != "total", k))
    all_values = []
    for i, name in enumerate(names):
        for split, curves, style in (("train", train, "-"), ("held-out", heldout, "--")):
            values = _to_numpy(curves.get(name, [])).reshape(-1)
            if values.size == 0:
                continue
            all_values.append(values)
            ax.plot(np.arange(1, values.size + 1), values, ls=style, color=f"C{i}",
                    lw=2.2 if name == "total" else 1.4, label=f"{name} ({split})",
                    gid=f"{split}:{name}")
    values = np.concatenate(all_values) if all_values else np.ones(1)
    if log:
        if np.nanmin(values) > 0:
            ax.set_yscale("log")
        else:
            positive = np.abs(values[values != 0])
            ax.set_yscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    # Legend: colour = component, style = split (proxies, so ax.lines holds only the data).
    handles = [Line2D([], [], color=f"C{i}", lw=2, label=name) for i, name in enumerate(names)]
    handles += [Line2D([], [], color="0.3", ls="-", label="train")]
    if any(len(v) for v in heldout.values()):
        handles += [Line2D([], [], color="0.3", ls="--", label="held-out")]
    ax.legend(handles=handles, fontsize=8, ncols=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, which="major", alpha=0.3)
    return ax


# --------------------------------------------------------------------------- imagined trajectories


def plot_trajectories(
    real: ArrayLike,
    imagined: ArrayLike,
    names: Sequence[str] | None = None,
    fig: Figure | None = None,
    *,
    limits: bool = True,
) -> Figure:
    """Real vs imagined trajectory from the same start, one subplot per observation dimension.

    Args:
        real: (T+1, D) observations from the environment.
        imagined: (T+1, D) one imagined trajectory, or (K, T+1, D) several (ensemble members,
            samples), drawn as a fan of thin lines around their median.
        names: D dimension names; CartPole's when D == 4, "obs[i]" otherwise.
        fig: Figure to draw into; it is cleared first (handy for redrawing from a widget) and
            given the constrained layout.
        limits: when D == 4, dotted lines at CartPole's termination bounds (±2.4 on position,
            ±12° on angle): an imagined line crossing them is an imagined episode end.

    Returns:
        The Figure, with D data axes.
    """
    real_np, imagined_np = _to_numpy(real), _to_numpy(imagined)
    if real_np.ndim != 2 or real_np.shape[0] < 1:
        raise ValueError(f"real: expected shape (T+1, D), got {tuple(real_np.shape)}")
    if imagined_np.ndim == 2:
        imagined_np = imagined_np[None]
    if imagined_np.ndim != 3 or imagined_np.shape[1:] != real_np.shape:
        steps, dims = real_np.shape
        raise ValueError(f"imagined: expected shape ({steps}, {dims}) or (K, {steps}, {dims}) "
                         f"to match real, got {tuple(_to_numpy(imagined).shape)}")
    dims = real_np.shape[1]
    if names is None:
        names = CARTPOLE_NAMES if dims == 4 else [f"obs[{i}]" for i in range(dims)]
    if len(names) != dims:
        raise ValueError(f"names: expected {dims} names (one per dimension), got {len(names)}")

    ncols = 1 if dims == 1 else 2
    nrows = -(-dims // ncols)
    if fig is None:
        fig = plt.figure(figsize=(4.2 * ncols, 2.4 * nrows + 0.4), layout="constrained")
    else:
        fig.clear()
        fig.set_layout_engine("constrained")  # the legend sits outside the axes, above them
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    steps = np.arange(real_np.shape[0])
    n_members = imagined_np.shape[0]
    bounds = {0: 2.4, 2: np.radians(12)} if (dims == 4 and limits) else {}
    for d, ax in enumerate(axes[:dims]):
        ax.plot(steps, real_np[:, d], color="C0", lw=2, gid="real", label="real", zorder=3)
        if n_members == 1:
            ax.plot(steps, imagined_np[0, :, d], color="C1", lw=1.8, ls="--", gid="imagined",
                    label="imagined")
        else:
            ax.plot(steps, imagined_np[:, :, d].T, color="C1", lw=0.8, alpha=0.35, gid="imagined",
                    label=f"imagined ({n_members} samples)")  # one line per sample
            ax.plot(steps, np.median(imagined_np[:, :, d], axis=0), color="C1", lw=1.8, ls="--",
                    gid="imagined_median", label="imagined median")
        # A limit far outside the data would squash it: draw it only where the data come close.
        low, high = ax.get_ylim()
        margin = 0.25 * (high - low)
        for sign in (-1, 1) if d in bounds else ():
            if low - margin <= sign * bounds[d] <= high + margin:
                ax.axhline(sign * bounds[d], color=_OUT_OF_BOUNDS_COLOR, lw=0.9, ls=":",
                           gid="limit", label="episode ends")
        ax.set_title(names[d], fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelbottom=True)  # sharex would hide the labels above a hidden axis
        if d + ncols >= dims:  # lowest visible axis of its column
            ax.set_xlabel("step")
    for ax in axes[dims:]:
        ax.set_visible(False)
    handles = {}
    for ax in axes[:dims]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside upper center",
               ncols=len(handles), fontsize=8, frameon=False)
    return fig


def plot_compounding_error(
    errors: ArrayLike | Mapping[str, ArrayLike],
    ax: Axes | None = None,
    *,
    ylabel: str = "prediction error",
) -> Axes:
    """Error of imagined vs real states against how many steps ahead the model predicted.

    Args:
        errors: (H,) error at horizons 1..H; or (S, H) over S start states, drawn as the mean
            with a band from the 10th to the 90th percentile (errors are skewed, so a ±std band
            would dip below zero on a log axis); or a dict label -> either, one line each.
        ax: Axes to draw into; a new one if None.
        ylabel: y-axis label.

    Returns:
        The Axes (log y): one line per curve, one band per (S, H) curve.
    """
    raw = dict(errors) if isinstance(errors, Mapping) else {None: errors}
    if not raw:
        raise ValueError("errors: expected an (H,) or (S, H) array or a non-empty dict of them")
    curves = {label: _to_numpy(curve) for label, curve in raw.items()}
    for label, values in curves.items():
        where = "errors" if label is None else f"errors[{label!r}]"
        if values.ndim not in (1, 2) or values.shape[-1] < 1:
            raise ValueError(f"{where}: expected shape (H,) or (S, H), got {tuple(values.shape)}")
    ax = ax if ax is not None else _new_axes((5, 3.4))
    for i, (label, values) in enumerate(curves.items()):
        horizons = np.arange(1, values.shape[-1] + 1)
        mean = values if values.ndim == 1 else values.mean(axis=0)
        ax.plot(horizons, mean, color=f"C{i}", lw=2, marker="o" if horizons.size <= 20 else None,
                ms=3, label=label, gid="error")
        if values.ndim == 2 and values.shape[0] > 1:
            low, high = np.percentile(values, [10, 90], axis=0)
            ax.fill_between(horizons, low, high, color=f"C{i}", alpha=0.2, lw=0, gid="band")
    ax.set_yscale("log")
    ax.set_xlabel("horizon (steps predicted ahead)")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.25)
    if any(label is not None for label in curves):
        ax.legend(fontsize=8)
    return ax


# --------------------------------------------------------------------------- learning curves


def _as_log_groups(log_or_logs: Any) -> dict[str | None, list[Any]]:
    """{label: [LearnLog, ...]} from a LearnLog, a list of them, or a dict label -> either."""
    def is_log(obj: Any) -> bool:
        return hasattr(obj, "episodes")

    expected = ("log_or_logs: expected a LearnLog (with .episodes), a list of them, or a dict "
                "label -> LearnLog or list of LearnLogs")
    if is_log(log_or_logs):
        groups = {None: [log_or_logs]}
    elif isinstance(log_or_logs, Mapping):
        groups = {str(k): list(v) if isinstance(v, Sequence) else [v]
                  for k, v in log_or_logs.items()}
    elif isinstance(log_or_logs, Sequence) and not isinstance(log_or_logs, str):
        groups = {None: list(log_or_logs)}
    else:
        raise ValueError(f"{expected}, got {type(log_or_logs).__name__}")
    if not groups or any(not logs or not all(map(is_log, logs)) for logs in groups.values()):
        raise ValueError(f"{expected}; got an empty group or an item without .episodes")
    return groups


def _episode_curve(log: Any) -> tuple[np.ndarray, np.ndarray]:
    steps = np.array([e.real_steps for e in log.episodes], dtype=float)
    returns = np.array([e.ret for e in log.episodes], dtype=float)
    return steps, returns


def _median_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Median over seeds of the (linearly interpolated) episode-return curves, on the range of
    real steps that every seed covers; empty if fewer than two seeds have episodes."""
    curves = [(s, r) for s, r in curves if s.size]
    if len(curves) < 2:
        return np.empty(0), np.empty(0)
    start, stop = max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves)
    if stop <= start:
        return np.empty(0), np.empty(0)
    grid = np.linspace(start, stop, 200)
    return grid, np.median([np.interp(grid, s, r) for s, r in curves], axis=0)


def plot_returns(log_or_logs: Any, ax: Axes | None = None, target: float | None = 475) -> Axes:
    """Episode return against real environment steps (the sample-efficiency picture).

    Args:
        log_or_logs: a LearnLog (``.episodes`` with ``real_steps``, ``ret``, ``phase``;
            ``.evals`` with ``real_steps``, ``mean_return``); a list of LearnLogs (one thin
            line per seed plus their median, thick); or a dict label -> LearnLog or list of
            LearnLogs, one colour per label, to compare agents.
        ax: Axes to draw into; a new one if None.
        target: a dotted horizontal line at this return (CartPole-v1 counts 475 as solved);
            None for none.

    Returns:
        The Axes. Grey shading marks the random warm-up (up to the last warm-up episode of
        any run); diamonds mark evaluations (mean return of the evaluation episodes).
    """
    groups = _as_log_groups(log_or_logs)
    ax = ax if ax is not None else _new_axes((6.4, 3.6))
    warmup_end, eval_label = 0.0, "evaluation (mean)"
    for i, (label, logs) in enumerate(groups.items()):
        color = f"C{i}"
        single = len(logs) == 1
        curves = [_episode_curve(log) for log in logs]
        for seed, ((steps, returns), log) in enumerate(zip(curves, logs)):
            ax.plot(steps, returns, color=color, lw=1.5 if single else 0.8,
                    alpha=0.9 if single else 0.35, marker="." if single else None, ms=4,
                    label=(label or "episode return") if single else None,
                    gid=f"episodes:{label}:{seed}")
            warmup = [e.real_steps for e in log.episodes if e.phase == "warmup"]
            warmup_end = max([warmup_end, *warmup])
            evals = list(getattr(log, "evals", None) or [])
            if evals:
                ax.plot([e.real_steps for e in evals], [e.mean_return for e in evals],
                        ls="none", marker="D", ms=5 if single else 4, color=color,
                        markeredgecolor="white", markeredgewidth=0.6,
                        alpha=1.0 if single else 0.7, gid=f"evals:{label}:{seed}",
                        label=eval_label, zorder=4)
                eval_label = None  # one legend entry for all of them
        if not single:
            grid, median = _median_curve(curves)
            ax.plot(grid, median, color=color, lw=2.4,
                    label=f"{label + ': ' if label else ''}median of {len(logs)} seeds",
                    gid=f"median:{label}")
    if warmup_end > 0:
        ax.axvspan(0, warmup_end, color="0.5", alpha=0.15, lw=0, gid="warmup",
                   label="random warm-up", zorder=0)
    return finish_learning_axes(ax, "episode return", target)


def finish_learning_axes(ax: Axes, ylabel: str, target: float | None = None) -> Axes:
    """What every return-vs-real-steps figure ends with: the dotted target line (if any),
    the axis labels, a grid and the legend. Returns `ax`."""
    if target is not None:
        ax.axhline(target, color="0.2", ls=":", lw=1.2, gid="target", label=f"target {target:g}")
    ax.set_xlabel("real environment steps")
    ax.set_ylabel(ylabel)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return ax


# --------------------------------------------------------------------------- planner's view


def _first_action_scores(scores: Any, actions: np.ndarray) -> dict[int, float]:
    if scores is None:
        return {}
    if isinstance(scores, Mapping):
        return {int(_to_numpy(a)): float(_to_numpy(s)) for a, s in scores.items()}
    values = _to_numpy(scores).reshape(-1)
    return {a: float(values[a]) for a in actions if a < values.size}


def plot_plan(plan: Any, ax: Axes | None = None) -> Axes:
    """Histogram of the imagined returns of a planner's candidates, split by first action.

    Random shooting can act on the first action of the best single sequence, or on the
    first action whose candidates do best on average. The two often disagree: one lucky
    sequence is not a good action. This figure shows both.

    Args:
        plan: object with ``candidate_returns`` (N,), ``candidate_actions`` (N, H) integer
            (discrete) or (N, H, A) float (continuous: one histogram, no split),
            ``best_index`` (int) and optionally ``first_action_scores`` (dict action -> score
            or (n_actions,) array; default: mean return per first action). The chosen action
            is ``plan.action`` if present, else the first action with the best score.
        ax: Axes to draw into; a new one if None.

    Returns:
        The Axes (legend to its right): one filled histogram per first action (the chosen one
        strong), one dashed line per first action at its score, one solid black line at the
        best single sequence's return.
    """
    try:
        returns = _to_numpy(plan.candidate_returns).reshape(-1)
        actions = _to_numpy(plan.candidate_actions)
        best = int(plan.best_index)
    except AttributeError as err:
        raise ValueError("plan: expected candidate_returns, candidate_actions and best_index "
                         f"attributes ({err})") from None
    if actions.ndim not in (2, 3) or actions.shape[0] != returns.size or returns.size == 0:
        raise ValueError(f"plan: candidate_actions {tuple(actions.shape)} should be (N, H) or "
                         f"(N, H, A) with N = len(candidate_returns) = {returns.size} > 0")
    if not 0 <= best < returns.size:
        raise ValueError(f"plan: best_index {best} out of range for {returns.size} candidates")
    ax = ax if ax is not None else _new_axes((7.5, 3.4))
    finite = returns[np.isfinite(returns)]
    n_bins = min(30, max(5, int(np.sqrt(finite.size)) + 1))
    bins = np.histogram_bin_edges(finite if finite.size else [0.0], bins=n_bins)

    def histogram(values: np.ndarray, color: str, label: str, strong: bool) -> None:
        ax.hist(values, bins=bins, histtype="stepfilled", facecolor=color,
                alpha=0.55 if strong else 0.25, label=label, gid="hist")
        ax.hist(values, bins=bins, histtype="step", color=color, lw=1.6 if strong else 0.9,
                gid="hist_edge")

    if actions.ndim == 3:  # continuous actions: no split by first action
        histogram(finite, "C0", "candidates", strong=True)
    else:
        first = actions[:, 0].round().astype(int)
        values = sorted(set(first.tolist()))
        scores = _first_action_scores(getattr(plan, "first_action_scores", None), np.array(values))
        for a in values:
            scores.setdefault(a, float(np.mean(returns[first == a])))
        chosen = getattr(plan, "action", None)
        if chosen is not None:
            chosen = int(_to_numpy(chosen).reshape(-1)[0])
        else:
            chosen = max(values, key=lambda a: scores[a])
        for a in values:
            is_chosen = a == chosen
            count = int((first == a).sum())
            histogram(returns[first == a], f"C{a}", f"first action {a} ({count} candidates)",
                      strong=is_chosen)
            ax.axvline(scores[a], color=f"C{a}", ls="--", lw=2.4 if is_chosen else 1.2,
                       gid=f"action_score:{a}",
                       label=f"score of action {a}: {scores[a]:.3g}" + ("  ← chosen" * is_chosen))
    first_of_best = "" if actions.ndim == 3 else f" (first action {int(first[best])})"
    ax.axvline(returns[best], color="k", lw=1.5, gid="best_sequence",
               label=f"best sequence: {returns[best]:.3g}{first_of_best}")
    pad = 0.05 * (bins[-1] - bins[0])
    ax.set_xlim(bins[0] - pad, bins[-1] + pad)
    ax.set_xlabel("imagined return over the horizon")
    ax.set_ylabel("candidates")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax


# --------------------------------------------------------------------------- animation


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
    real_np = _to_numpy(real)
    if real_np.ndim != 2 or real_np.shape[0] < 1 or real_np.shape[1] not in (2, 4):
        raise ValueError(f"real: expected shape (T, 4) or (T, 2), got {tuple(real_np.shape)}")
    imagined_np = None if imagined is None else _to_numpy(imagined)
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
