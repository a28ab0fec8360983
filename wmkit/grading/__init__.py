"""Graded exercises: the checks behind them, feedback in the notebook, and the grader.

In an exercise notebook::

    from wmkit import grading
    grading.check("01_model_loss", one_step_loss)     # score table, fresh random inputs

From a terminal (see docs/INSTRUCTORS.md)::

    python -m wmkit.grading submissions/ --out grades/ --timeout 20
    python -m wmkit.grading.build     # regenerate exercises/ (and the nbgrader and otter versions)

In nbgrader and otter-grader test cells::

    grading.assert_check("01_model_loss", one_step_loss, "total = delta + reward + done")
"""

from .core import (
    EXERCISES,
    Check,
    CheckFailed,
    CheckResult,
    Exercise,
    Part,
    Report,
    all_exercises,
    assert_check,
    check,
    get_exercise,
    require_full_marks,
    run_check,
)

__all__ = ["EXERCISES", "Check", "CheckFailed", "CheckResult", "Exercise", "Part", "Report",
           "all_exercises", "assert_check", "check", "get_exercise", "require_full_marks",
           "run_check"]
