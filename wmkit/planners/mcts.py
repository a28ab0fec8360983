"""Monte Carlo tree search (MCTS) over a deterministic world model, with batched model calls.

A tree of action prefixes grows from the current belief. Each node is a sequence of first
actions; its value is the mean imagined H-step return of the rollouts that began with it.
One round of the search:

1. **select** leaves: walk down from the root, at each node taking the child with the best
   UCT score (`uct_scores`: its value, scaled to [0, 1] over the tree, plus an exploration
   bonus that grows for rarely tried children), until a node with no children. Up to
   `max_leaves` walks per round; a "virtual loss" (the walk's path counts as visited, at the
   worst value seen) makes each walk prefer a different leaf;
2. **expand** every chosen leaf by all its actions and **evaluate** each new child by random
   rollouts: its prefix, then uniformly random actions up to H steps; all the rollouts of the
   round in *one* batched `imagine` from the root belief;
3. **back up**: each child's rollouts' returns are added to it and to every node above it.

A node whose prefix already ended the episode (by the model's learned termination, or the
`termination_fn`) or that is H steps deep has an exact value: it is never expanded.

Why from the root each time? Every rollout replays its prefix from the belief instead of
resuming from a stored state, which costs a few imagined steps more but works for any world
model (an RSSM's latent state is not an observation to restart from). It assumes a
deterministic model: rollouts that share a prefix share its rewards, so comparing siblings'
values compares what follows them. The rounds spend the budget evenly (budget // (rounds x H)
rollouts each); it acts on the most visited first action. The tree lives on the host: each
round reads its returns back (on a GPU the host waits once per round, not once per decision).
Discrete actions only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from ..models.base import TerminationFn, WorldModel
from ..utils import check_positive_int
from .base import MPCPlanner, Plan, check_positive_float


def uct_scores(values: np.ndarray | float, visits: np.ndarray | float, parent_visits: float,
               exploration: float) -> np.ndarray | float:
    """UCT: values (n,) scaled to [0, 1], visits (n,) > 0, the parent's visits -> scores (n,).

    score = value + exploration x sqrt(ln(parent_visits) / visits): the walk takes the child
    with the highest score, trading what looks best now against what has been tried least.
    Plain floats work too (one child's score): the search's walks score a node's few children
    in Python, where numpy's per-call cost would be most of the search's own time.
    """
    return values + exploration * (math.log(max(parent_visits, 1.0)) / visits) ** 0.5


@dataclass
class Tree:
    """The search tree of the last decision, M nodes (node 0 is the root), as numpy arrays.

    parent (M,) (-1 for the root), action (M,) (the action leading into the node, -1 for the
    root), depth (M,), visits (M,) (rollouts through the node), value (M,) (their mean return),
    exact (M,) bool (ended or H deep: never expanded).
    """

    parent: np.ndarray
    action: np.ndarray
    depth: np.ndarray
    visits: np.ndarray
    value: np.ndarray
    exact: np.ndarray

    def __len__(self) -> int:
        return len(self.parent)

    def children(self, node: int) -> np.ndarray:
        """The indices of `node`'s children (in order of their action)."""
        return np.flatnonzero(self.parent == node)


class MCTS(MPCPlanner):
    """MPC by Monte Carlo tree search (see the module docstring); Discrete actions only.

    Args:
        model: a deterministic `WorldModel` with Discrete actions.
        budget: imagined transitions per decision (at least n_actions x horizon: the root's
            expansion).
        horizon: H, the length of every rollout (prefix plus random continuation).
        rounds: select-expand-evaluate-backup rounds per decision (one `imagine` each).
        rollouts_per_child: R, the fewest random rollouts evaluating a new child; a round
            expands at most budget // (rounds x H) // (n_actions x R) leaves.
        exploration: UCT's constant c (values are scaled to [0, 1], so ~1 is a fair start).
        termination_fn, risk, max_disagreement, seed, compile: see `MPCPlanner`.

    After each decision `tree` holds the search tree (a `Tree`): what notebook 09 draws.
    """

    def __init__(self, model: WorldModel, budget: int = 10_000, horizon: int = 20,
                 rounds: int = 8, rollouts_per_child: int = 4, exploration: float = 1.0,
                 termination_fn: TerminationFn | None = None, risk: float = 0.0,
                 max_disagreement: float | None = None, seed: int = 0,
                 compile: bool = False) -> None:
        self.rounds = check_positive_int("rounds", rounds)
        self.rollouts_per_child = check_positive_int("rollouts_per_child", rollouts_per_child)
        self.exploration = check_positive_float("exploration", exploration)
        super().__init__(model, budget, horizon, termination_fn, risk, max_disagreement, seed,
                         compile)
        spec = self.action_spec
        if not spec.discrete:
            raise ValueError(f"model: MCTS needs Discrete actions (a tree branches on each "
                             f"one); this model's are a Box of {spec.n} dims: use CEM, MPPI "
                             f"or GradientPlanner")
        self.require_sequences(spec.n, "n_actions", "one rollout per action at the root")
        # Round 1 only expands the root: give it all the rollouts a round may have, at least n.
        self.rollouts_per_round = max(spec.n, self.budget // (self.rounds * self.horizon))
        self.tree: Tree | None = None
        self._virtual = (0.0, 0.0)

    def search(self, state: Any) -> Plan:
        """Grow the tree for `rounds` rounds (or until the budget is spent); act."""
        n, horizon = self.action_spec.n, self.horizon
        # The tree as Python lists while it grows (cheap appends); frozen into a `Tree` at the end.
        self._parent, self._action, self._depth = [-1], [-1], [0]
        self._visits, self._total, self._exact = [0.0], [0.0], [False]
        self._children: list[list[int]] = [[]]
        self._prefix: list[tuple[int, ...]] = [()]
        rollouts, sequences, all_returns = self.budget // horizon, [], []
        for _ in range(self.rounds):
            budget = min(self.rollouts_per_round, rollouts)
            if budget < n:  # not enough left to expand even one leaf
                break
            leaves = self.select_leaves(max(1, budget // (n * self.rollouts_per_child)))
            if not leaves:  # every path ends in an exact node: nothing left to search
                break
            per_child = budget // (n * len(leaves))
            actions = self.leaf_rollouts(leaves, per_child)
            rollout, returns = self.evaluate(state, actions)
            self.backup(leaves, per_child, returns.cpu().numpy(), rollout.dones.cpu().numpy())
            rollouts -= len(actions)
            sequences.append(actions)
            all_returns.append(returns)
        self.tree = self.freeze()
        root_children = self._children[0]
        most_visited = max(root_children, key=lambda c: (self._visits[c], self.value(c)))
        first = self._action[most_visited]
        # The plan: the best rollout that started with the chosen action.
        actions_t, returns_t = torch.cat(sequences), torch.cat(all_returns)
        returns_t = torch.where(actions_t[:, 0] == first, returns_t, float("-inf"))
        best = actions_t[returns_t.argmax()]
        return self.decide(best, rollout, returns, first=best[0])

    # -- the four steps --------------------------------------------------------------------------

    def value(self, node: int) -> float:
        """The mean return of the rollouts through `node` so far (0 before any)."""
        return self._total[node] / self._visits[node] if self._visits[node] else 0.0

    def uct(self, parent_visits: float, low: float, span: float, node: int) -> float:
        """`node`'s UCT score, its value scaled to [0, 1] by the tree's `low` and `span`."""
        visits = self._visits[node]
        scaled = (self._total[node] / visits - low) / span
        return uct_scores(scaled, visits, parent_visits, self.exploration)

    def select_leaves(self, most: int) -> list[tuple[int, list[int]]]:
        """Up to `most` distinct leaves to expand, each with its path from the root."""
        values = [self.value(i) for i, v in enumerate(self._visits) if v > 0]
        low = min(values, default=0.0)
        span = max(max(values, default=0.0) - low, 1e-6)
        # The virtual loss: each chosen path counts as visited by the rollouts to come, all at
        # the worst value seen; `backup` takes it off again.
        self._virtual = (float(self.action_spec.n * self.rollouts_per_child),
                         low * self.action_spec.n * self.rollouts_per_child)
        leaves: list[tuple[int, list[int]]] = []
        for _ in range(2 * most):
            if len(leaves) == most:
                break
            node, path = 0, [0]
            while self._children[node]:
                node = max(self._children[node], key=partial(self.uct, self._visits[node],
                                                               low, span))
                path.append(node)
            if any(node == leaf for leaf, _ in leaves):
                continue
            if self._exact[node]:  # nothing left to learn here: count its exact value again
                self.add(path, 1.0, self.value(node))
                continue
            leaves.append((node, path))
            self.add(path, *self._virtual)
        return leaves

    def leaf_rollouts(self, leaves: list[tuple[int, list[int]]], per_child: int
                      ) -> torch.Tensor:
        """Rollouts (B, H) for every child of every leaf, `per_child` each, leaf by leaf and
        action by action: the child's prefix, then uniformly random actions."""
        n, horizon = self.action_spec.n, self.horizon
        # Built on the host in numpy (the prefixes are host lists), then copied to the device.
        prefixes = np.zeros((len(leaves), n, horizon), dtype=np.int64)
        fixed = np.zeros((len(leaves), n, horizon), dtype=bool)
        for row, (leaf, _) in enumerate(leaves):
            depth = len(self._prefix[leaf])
            prefixes[row, :, :depth] = self._prefix[leaf]
            prefixes[row, :, depth] = np.arange(n)
            fixed[row, :, : depth + 1] = True
        prefix_t, fixed_t = (torch.from_numpy(a.reshape(len(leaves) * n, horizon)
                                              .repeat(per_child, 0)).to(self.device)
                             for a in (prefixes, fixed))
        random = self.action_spec.sample(tuple(prefix_t.shape), self.generator, self.device)
        return torch.where(fixed_t, prefix_t, random)

    def backup(self, leaves: list[tuple[int, list[int]]], per_child: int,
               returns: np.ndarray, dones: np.ndarray) -> None:
        """Make the children, and add their rollouts' returns to them and up their paths.

        returns (B,), dones (B, H): the rollouts of `leaf_rollouts`, in its order.
        """
        visits, total = self._virtual
        row = 0
        for leaf, path in leaves:
            self.add(path, -visits, -total)
            for action in range(self.action_spec.n):
                child = self.new_node(leaf, action)
                depth = self._depth[child]
                # Rollouts sharing a prefix share its rewards: the first one says if it ended.
                self._exact[child] = depth >= self.horizon or bool(dones[row, :depth].any())
                self.add([*path, child], float(per_child),
                         float(returns[row: row + per_child].sum()))
                row += per_child

    def add(self, path: list[int], visits: float, total: float) -> None:
        """Add `visits` rollouts worth `total` in all to every node of `path`."""
        for node in path:
            self._visits[node] += visits
            self._total[node] += total

    def new_node(self, parent: int, action: int) -> int:
        """Append the child of `parent` reached by `action`; its index."""
        node = len(self._parent)
        self._parent.append(parent)
        self._action.append(action)
        self._depth.append(self._depth[parent] + 1)
        self._visits.append(0.0)
        self._total.append(0.0)
        self._exact.append(False)
        self._children.append([])
        self._prefix.append((*self._prefix[parent], action))
        self._children[parent].append(node)
        return node

    def freeze(self) -> Tree:
        """The grown tree as numpy arrays, for drawing (`Tree`)."""
        visits = np.array(self._visits)
        return Tree(np.array(self._parent), np.array(self._action), np.array(self._depth),
                    visits, np.array(self._total) / np.maximum(visits, 1e-12),
                    np.array(self._exact))
