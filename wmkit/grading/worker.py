"""The grading process: grades notebooks one after another, each in a fresh kernel.

`python -m wmkit.grading` starts it from a fresh read-only copy of the kit, in a session of
its own, and sends it one JSON line on stdin: the kit's files and the notebooks to grade
(each with a nonce). For each notebook it writes another fresh read-only copy of the kit
(without the checks) for that notebook's kernel, grades it (`runner.grade_notebook`) and
prints `WMKIT-GRADE <nonce> <json>` on stdout.

The learner's kernel is this process's child: a kernel that kills its parent kills this
process and nothing else. The command line then records that notebook as not graded and
starts a new grading process for the rest. The nonces came on stdin, read in full before any
kernel started, so a line a kernel writes into this process's stdout is not taken for a grade.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from pathlib import Path

RESULT = "WMKIT-GRADE"


def main() -> int:
    request = json.loads(sys.stdin.readline())
    sys.stdin.close()
    # Everything grading needs is imported now, before any learner code runs: a kernel that
    # later writes to this process's copy of the kit changes nothing here.
    from .core import all_exercises
    from .isolation import JOB_MARK, KitSnapshot, remove_tree
    from .runner import grade_notebook

    all_exercises()
    kit = KitSnapshot({name: base64.b64decode(data) for name, data in request["kit"].items()})
    for job in request["jobs"]:
        folder = Path(tempfile.mkdtemp(prefix="notebook-", dir=request.get("scratch")))
        try:
            kernel_kit = kit.write(folder / "kit", without=("wmkit/grading/checks",))
            grade = grade_notebook(Path(job["notebook"]), kit=kernel_kit,
                                   workdir=folder / "work", student=job["student"],
                                   timeout=float(request["timeout"]),
                                   seed=int(request["seed"]),
                                   token=os.environ.get(JOB_MARK, ""),
                                   output_limit=int(request["output_limit"]))
        finally:
            remove_tree(folder)
        sys.stdout.write(f"{RESULT} {job['nonce']} {json.dumps(grade.to_dict())}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
