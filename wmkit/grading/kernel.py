"""The grader's side inside the learner's kernel: run one check, hand the result back.

The grader sends one short cell per check that calls `report(...)`. The result travels back
as a display message of its own MIME type, tagged with a token the grader chose for this run,
so nothing the learner prints can be mistaken for it.
"""

from __future__ import annotations

from typing import Any

from .core import OUTPUT_LIMIT, get_exercise, run_check

MIME = "application/vnd.wmkit.check+json"


def report(exercise_id: str, part: str, index: int, seed: int, token: str,
           output_limit: int = OUTPUT_LIMIT) -> None:
    """Run check `index` of `part` on the function of that name in the kernel's namespace."""
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    namespace: dict[str, Any] = shell.user_ns if shell is not None else {}
    exercise = get_exercise(exercise_id)
    result = run_check(exercise_id, exercise.parts[part], index, namespace.get(part), seed,
                       output_limit)
    display({MIME: {"token": token, "result": result.to_dict()}}, raw=True)
