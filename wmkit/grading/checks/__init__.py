"""The checks of every exercise; importing this package registers them (listed by id)."""

from . import (  # noqa: F401  (each module registers its exercise)
    dyna,
    ensemble,
    model_loss,
    planner,
    rollout,
    rssm_kl,
)
