"""The graded exercises: generated notebooks, checks, the grader and the gradebook.

Kernels are slow to start (torch is imported in each), so the notebook-grading tests share
one kernel session; the command-line test starts its own, as graders do.
"""

import csv
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import torch

import wmkit as wm
from wmkit import grading
from wmkit.grading import build
from wmkit.grading.__main__ import main as grade_main
from wmkit.grading.core import all_exercises, get_exercise
from wmkit.grading.gradebook import write_gradebook
from wmkit.grading.runner import KernelSession, NotebookGrade, grade_notebook, identify_exercise

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_IDS = sorted({path.stem for path in build.outputs()})


def answer_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if "answer" in c.metadata.get("tags", [])]


def write_variant(source: Path, target: Path, edits: dict[str, str]) -> Path:
    """A copy of notebook `source` with text replaced in its answer cells (old -> new)."""
    nb = nbformat.read(source, as_version=4)
    for old, new in edits.items():
        cells = [c for c in answer_cells(nb) if old in c.source]
        assert cells, f"{old!r} not found in the answer cells of {source}"
        cells[0].source = cells[0].source.replace(old, new)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


@pytest.fixture(scope="module")
def session():
    with KernelSession() as shared:
        yield shared


# -- the generated notebooks -------------------------------------------------------------------


def test_there_are_six_exercises_with_checks():
    assert EXERCISE_IDS == list(all_exercises()) and len(EXERCISE_IDS) >= 6
    for exercise_id in EXERCISE_IDS:
        assert get_exercise(exercise_id).max_points > 0


def test_generated_notebooks_are_up_to_date():
    assert build.stale() == [], "run: python -m wmkit.grading.build"


def test_build_markers():
    cells = build.parse(
        "notes for instructors\n"
        "# %% [markdown]\n# # Title\n#\n# text\n"
        '# %% tags=["answer"]\ndef f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n'
        "    ### END SOLUTION\n\n"
        "# %%\ncheck(f)\n### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS\n")
    assert [c.kind for c in cells] == ["markdown", "code", "code"]
    assert build.render(cells[0], solution=False) == "# Title\n\ntext"
    assert build.render(cells[1], solution=False) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError")
    assert build.render(cells[1], solution=True) == "def f(x):\n    return x + 1"
    assert build.render(cells[2], solution=False) == "check(f)"
    assert build.render(cells[2], solution=True) == "check(f)\nassert f(1) == 2"
    assert cells[1].tags == ["answer"]
    for broken in ("# %%\n### BEGIN SOLUTION\nx = 1\n", "# %%\n### END SOLUTION\n",
                   "# %%\n### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n"):
        with pytest.raises(ValueError, match="SOLUTION|HIDDEN"):
            build.render(build.parse(broken)[0], solution=False)


@pytest.mark.parametrize("exercise_id", EXERCISE_IDS)
def test_student_and_solution_notebooks_agree_with_the_checks(exercise_id):
    exercise = get_exercise(exercise_id)
    student = nbformat.read(ROOT / "exercises" / f"{exercise_id}.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "exercises" / "solutions" / f"{exercise_id}.ipynb",
                             as_version=4)
    assert student.metadata["wmkit"]["exercise"] == exercise_id
    # The points the learner reads are the points the checks give.
    intro = student.cells[0].source
    assert f"({exercise.max_points:g} points)" in intro.splitlines()[0]
    for name, part in exercise.parts.items():
        assert re.search(rf"`{name}\(.*\)` \| {part.max_points:g} \|", intro), name
        assert any(f"def {name}(" in c.source for c in answer_cells(student)), name
    for cell in answer_cells(student):
        assert "# YOUR CODE HERE" in cell.source and "raise NotImplementedError" in cell.source
    texts = [c.source for c in student.cells + solution.cells]
    assert not any("### BEGIN" in t or "### END" in t for t in texts)
    assert not any("require_full_marks" in c.source for c in student.cells)
    assert any(f'grading.check("{exercise_id}"' in c.source for c in student.cells)


# -- feedback in the notebook (in-process, no kernel) ------------------------------------------


def test_check_reports_stubs_and_refuses_bad_calls():
    def one_step_loss(model, batch, done_weight=1.0):
        raise NotImplementedError

    report = grading.check("01_model_loss", one_step_loss, seed=3)
    assert report.score == 0 and report.max_score == 8 and not report.full_marks
    assert all("not done yet: one_step_loss still raises NotImplementedError" == r.message
               for r in report.results)
    assert "score: 0/8" in str(report) and "<table>" in report._repr_html_()
    with pytest.raises(ValueError, match="exercise_id"):
        grading.check("99_nothing", one_step_loss)
    with pytest.raises(ValueError, match="functions"):
        grading.check("02_rollout", one_step_loss)
    grading.require_full_marks()
    try:
        with pytest.raises(AssertionError, match="expected full marks"):
            grading.check("01_model_loss", one_step_loss)
    finally:
        grading.require_full_marks(False)


def test_handing_the_work_to_the_library_scores_nothing():
    def one_step_loss(model, batch, done_weight=1.0):
        return model.loss(batch, done_weight)

    report = grading.check("01_model_loss", one_step_loss, seed=0)
    assert report.score == 0
    assert all("calls the library's MLPWorldModel.loss" in r.message for r in report.results)
    # ... and the library is left as it was.
    model = wm.MLPWorldModel(4, wm.ActionSpec(True, 2), hidden=8, device="cpu")
    batch = wm.collect(wm.make_env("CartPole-v1"), steps=20).tensors()
    assert set(model.loss(batch)) >= {"delta", "total"}


def test_a_hard_coded_answer_fails():
    first = torch.tensor([0, 1, 1, 0])
    returns = torch.tensor([1.0, 2.0, 4.0, 3.0])
    fixed = torch.tensor([2.0, 3.0])  # right for this one input only

    def first_action_scores(first_actions, returns, n_actions):
        return fixed

    assert torch.equal(first_action_scores(first, returns, 2), torch.tensor([2.0, 3.0]))
    report = grading.check("03_planner", first_action_scores, seed=0)
    assert report.score == 0


def test_identify_exercise_by_metadata_then_file_name(tmp_path):
    nb = nbformat.v4.new_notebook()
    assert identify_exercise(nb, tmp_path / "02_rollout-alice.ipynb") == "02_rollout"
    assert identify_exercise(nb, tmp_path / "03 (copy).ipynb") == "03_planner"
    assert identify_exercise(nb, tmp_path / "scratch.ipynb") is None
    nb.metadata["wmkit"] = {"exercise": "05_dyna"}
    assert identify_exercise(nb, tmp_path / "scratch.ipynb") == "05_dyna"


# -- grading notebooks in a kernel ---------------------------------------------------------------


def test_solutions_score_full_marks(session):
    for exercise_id in EXERCISE_IDS:
        path = ROOT / "exercises" / "solutions" / f"{exercise_id}.ipynb"
        before = path.read_bytes()
        grade = grade_notebook(path, session=session, seed=11)
        failed = [(r.check, r.message) for r in grade.results if r.status != "passed"]
        assert grade.status == "graded" and not failed and not grade.notes, (exercise_id, failed,
                                                                             grade.notes)
        assert grade.score == grade.max_score == get_exercise(exercise_id).max_points
        assert path.read_bytes() == before


def test_untouched_stubs_score_zero_with_clear_messages(session):
    for exercise_id in EXERCISE_IDS:
        grade = grade_notebook(ROOT / "exercises" / f"{exercise_id}.ipynb", session=session,
                               seed=12)
        assert grade.status == "graded" and grade.score == 0 and grade.max_score > 0
        for result in grade.results:
            assert result.status == "failed"
            assert result.message == (f"not done yet: {result.part} still raises "
                                      "NotImplementedError"), result


def test_a_wrong_solution_loses_exactly_the_right_points(session, tmp_path):
    path = write_variant(ROOT / "exercises" / "solutions" / "01_model_loss.ipynb",
                         tmp_path / "01_model_loss.ipynb", {
                             "F.huber_loss(out[:, d], target_reward)":
                                 "F.mse_loss(out[:, d], target_reward)",
                             "pos_weight=torch.tensor(done_weight, device=out.device)":
                                 "pos_weight=torch.tensor(1.0)"})
    grade = grade_notebook(path, session=session, seed=13)
    failed = {r.check: r.message for r in grade.results if r.status != "passed"}
    assert set(failed) == {"reward: Huber loss of the normalised reward",
                           "done: terminations weighted by done_weight (pos_weight)"}
    assert "F.huber_loss" in failed["reward: Huber loss of the normalised reward"]
    assert grade.score == 6 and grade.max_score == 8


def test_a_kernel_that_dies_or_hangs_is_replaced_and_the_rest_is_graded(session, tmp_path):
    path = write_variant(ROOT / "exercises" / "solutions" / "03_planner.ipynb",
                         tmp_path / "03_planner.ipynb", {
                             '    if select == "best":\n':
                                 '    while select == "mean":  # deaf to interrupts\n'
                                 '        try:\n            __import__("time").sleep(60)\n'
                                 '        except KeyboardInterrupt:\n            pass\n'
                                 '    if select == "best":\n        import os\n'
                                 '        os._exit(1)\n'})
    grade = grade_notebook(path, session=session, seed=14, timeout=3)
    status = {r.check: r.status for r in grade.results}
    killed = '"best": the first action of the highest-return candidate'
    hung = '"mean": the first action with the highest mean return'
    assert status.pop(killed) == "error" and status.pop(hung) == "timeout"
    assert set(status.values()) == {"passed"}  # part 1, and the check after the hang
    assert "killed the kernel" in next(r.message for r in grade.results if r.check == killed)
    assert grade.restarts == 2 and grade.score == 5


# -- the command line: a hostile notebook in a fresh kernel --------------------------------------


def test_command_line_survives_a_hostile_notebook(tmp_path, capsys):
    submissions = tmp_path / "submissions"
    hostile = write_variant(
        ROOT / "exercises" / "solutions" / "02_rollout.ipynb",
        submissions / "mallory" / "02_rollout.ipynb", {
            # An output flood at module level, then the answer.
            "def alive_before(": "for _ in range(300):\n    print('x' * 10_000)\n\n\n"
                                 "def alive_before(",
            # sys.exit in an answer cell, after the def: the kernel and the rest go on.
            "    return wm.Rollout(observations_t, actions, rewards_t, dones)":
                "    return wm.Rollout(observations_t, actions, rewards_t, dones)\n\n\n"
                "import sys\n\nsys.exit(1)",
            # An endless loop, only when a termination rule is given (two checks).
            "    n, horizon = actions.shape[:2]\n":
                "    n, horizon = actions.shape[:2]\n    while termination_fn is not None:\n"
                "        pass\n    print('y' * 1_000_000)  # a flood inside a check\n"})
    shutil.copy(ROOT / "exercises" / "solutions" / "01_model_loss.ipynb",
                submissions / "mallory" / "01_model_loss.ipynb")
    (submissions / "mallory" / "scratch.ipynb").write_text(
        nbformat.writes(nbformat.v4.new_notebook()), encoding="utf-8")
    before = hostile.read_bytes()
    out = tmp_path / "grades"

    code = grade_main([str(submissions), "--out", str(out), "--timeout", "4", "--seed", "5",
                       "--share-kernel"])
    printed = capsys.readouterr()

    assert code == 0
    assert hostile.read_bytes() == before
    assert "skipped" in printed.err and "scratch.ipynb" in printed.err
    assert re.search(r"mallory\s+8\s+7\s+15\s+17", printed.out), printed.out
    with (out / "results.csv").open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["exercise"] == "02_rollout"]
    by_status: dict[str, list[str]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row["check"])
    assert sorted(by_status["timeout"]) == [
        "dones: termination_fn, when given, replaces the head",
        "rewards: predicted until the first done, zero after it"]
    assert len(by_status["passed"]) == 6 and set(by_status) == {"passed", "timeout"}
    report = json.loads((out / "gradebook.json").read_text(encoding="utf-8"))
    assert report["settings"]["seed"] == 5
    notes = next(n for n in report["notebooks"] if n["exercise"] == "02_rollout")["notes"]
    assert any("raised SystemExit" in note for note in notes)
    assert any("printed too much" in note for note in notes)
    assert len(json.dumps(report)) < 100_000  # the floods were not kept


def test_gradebook_files(tmp_path):
    result = grading.CheckResult("01_model_loss", "one_step_loss", "delta", 2.0, 2.0, "passed")
    grades = [NotebookGrade("a/01.ipynb", "alice", "01_model_loss", [result]),
              NotebookGrade("b/02.ipynb", "bob", "02_rollout", [
                  grading.CheckResult("02_rollout", "imagine", "obs", 0.0, 3.0, "timeout",
                                      "ran longer than 4 s")])]
    book, results, full = write_gradebook(grades, tmp_path / "out", {"seed": 1})
    with book.open(encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table == [["student", "01_model_loss", "02_rollout", "total", "max_total"],
                     ["alice", "2", "", "2", "5"], ["bob", "", "0", "0", "5"]]
    with results.open(encoding="utf-8") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["passed", "timeout"]
    data = json.loads(full.read_text(encoding="utf-8"))
    assert data["notebooks"][1]["max_score"] == 3.0 and data["settings"] == {"seed": 1}
