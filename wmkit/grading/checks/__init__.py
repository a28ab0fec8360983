"""The checks of every exercise; importing this package registers them (listed by id).

To add an exercise, add its module here (see docs/INSTRUCTORS.md, "Adding an exercise").
"""

from . import (  # each module registers its exercise
    cem_update,
    common,
    dyna,
    ensemble,
    lambda_return,
    model_loss,
    planner,
    rollout,
    rssm_kl,
)

MODULES = [common, model_loss, rollout, planner, ensemble, dyna, rssm_kl, cem_update,
           lambda_return]
"""Every module of checks: their functions are the grader's references (see core.forbidden_code)."""
