"""The graded exercises: generated notebooks, checks, library-use detection, grading in a
kernel, and the gradebook.

Kernels are slow to start (torch is imported in each), so the notebook-grading tests here
share one kernel session (fine for our own, trusted notebooks); the command line, which
never shares, is tested with hostile notebooks in test_grading_hostile.py.
"""

import csv
import inspect
import json
import re
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

import wmkit as wm
from wmkit import grading
from wmkit.grading import build
from wmkit.grading.core import all_exercises, get_exercise
from wmkit.grading.gradebook import Gradebook, neutralise, write_gradebook
from wmkit.grading.isolation import KitSnapshot, remove_tree
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
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kernel")
    kit = KitSnapshot.capture().write(folder / "kit", without=("wmkit/grading/checks",))
    try:
        with KernelSession(kit, folder / "work") as shared:
            yield shared
    finally:
        remove_tree(folder)


# -- the generated notebooks -------------------------------------------------------------------


def test_there_are_six_exercises_with_checks():
    assert EXERCISE_IDS == list(all_exercises()) and len(EXERCISE_IDS) >= 6
    for exercise_id in EXERCISE_IDS:
        assert get_exercise(exercise_id).max_points > 0


def test_generated_notebooks_are_up_to_date():
    assert build.stale() == [], "run: python -m wmkit.grading.build"


def test_build_reads_percent_sources_with_jupytext_and_renders_markers(tmp_path):
    source = tmp_path / "07_demo.py"
    source.write_text(
        "# notes for instructors\n\n"
        "# %% [markdown]\n# # Title\n#\n# text\n\n"
        '# %% tags=["answer"]\ndef f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n'
        "    ### END SOLUTION\n\n"
        "# %%\ncheck(f)\n### BEGIN HIDDEN TESTS\nassert f(1) == 2\n### END HIDDEN TESTS\n")
    cells = build.read_source(source).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code"]  # no header cell
    assert cells[0].source == "# Title\n\ntext" and cells[1].metadata["tags"] == ["answer"]
    assert build.render(cells[1].source, solution=False) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError")
    assert build.render(cells[1].source, solution=True) == "def f(x):\n    return x + 1"
    kept = build.render(cells[1].source, solution=False, keep_solution_markers=True)
    assert "### BEGIN SOLUTION" in kept and "return x + 1" in kept  # nbgrader's own markers
    assert build.render(cells[2].source, solution=False) == "check(f)"
    assert build.render(cells[2].source, solution=True) == "check(f)\nassert f(1) == 2"
    for broken in ("### BEGIN SOLUTION\nx = 1\n", "### END SOLUTION\n",
                   "### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n"):
        with pytest.raises(ValueError, match="SOLUTION|HIDDEN"):
            build.render(broken, solution=False)


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


def test_the_library_own_code_scores_nothing_however_it_is_handed_in():
    from wmkit.grading.checks.model_loss import _reference_loss

    def wrapper(model, batch, done_weight=1.0):
        return model.loss(batch, done_weight)

    captured = wm.MLPWorldModel.loss  # a reference taken before the call

    def calls_a_captured_reference(model, batch, done_weight=1.0):
        return captured(model, batch, done_weight)

    copy: dict = {}  # the library's source, exec'ed: a new function with the same code
    exec(textwrap.dedent(inspect.getsource(wm.MLPWorldModel.loss)),
         vars(wm.models.mlp).copy(), copy)
    handed_in = {"the class attribute": wm.MLPWorldModel.loss,
                 "the grader's reference": _reference_loss, "a wrapper": wrapper,
                 "a captured reference": calls_a_captured_reference,
                 "a verbatim copy": copy["loss"]}
    for how, function in handed_in.items():
        report = grading.check("01_model_loss", function, seed=0)
        assert report.score == 0, how
        for result in report.results:
            assert "runs the library's MLPWorldModel.loss" in result.message, (how, result)
            assert any(f.startswith("library: ") for f in result.flags), (how, result)
    # ... and the library is left as it was.
    model = wm.MLPWorldModel(4, wm.ActionSpec(True, 2), hidden=8, device="cpu")
    batch = wm.collect(wm.make_env("CartPole-v1"), steps=20).tensors()
    assert set(model.loss(batch)) >= {"delta", "total"}


@pytest.mark.parametrize("exercise_id, part, counterpart", [
    ("02_rollout", "alive_before", "alive_before"),
    ("02_rollout", "imagine", "MLPWorldModel.imagine"),
    ("04_ensemble", "disagreement", "EnsembleWorldModel.disagreement"),
    ("05_dyna", "dyna_update", "Dyna.update"),
    ("06_rssm_kl", "gaussian_kl", "RSSMWorldModel.kl"),
    ("07_cem_update", "cem_update", "cem_update"),
    ("08_lambda_return", "lambda_returns", "lambda_returns"),
])
def test_every_library_counterpart_as_the_answer_scores_nothing(exercise_id, part, counterpart):
    owner, _, name = counterpart.rpartition(".")
    library = getattr(getattr(wm, owner), name) if owner else getattr(wm, name, None)
    if exercise_id == "07_cem_update":  # a function of wmkit.planners.cem, not in the flat API
        library = wm.planners.cem.cem_update
    if exercise_id == "08_lambda_return":  # a function of wmkit.agents, not in the flat API
        library = wm.agents.lambda_returns
    if exercise_id == "06_rssm_kl":  # the method ignores self: call it as a function
        def library(posterior, prior, kl=library):
            return kl(None, posterior, prior)
    report = grading.check(exercise_id, seed=4, **{part: library})
    assert report.score == 0 and report.results
    for result in report.results:
        assert f"the library's {counterpart}" in result.message, result


def test_switching_the_watch_off_scores_nothing():
    import sys

    def one_step_loss(model, batch, done_weight=1.0):
        sys.setprofile(None)
        return wm.MLPWorldModel.loss(model, batch, done_weight)

    report = grading.check("01_model_loss", one_step_loss, seed=0)
    assert report.score == 0
    assert all(any("tampering: called sys.setprofile" == f for f in r.flags)
               for r in report.results)


def test_assert_check_is_one_check_by_name_or_number():
    def first_action_scores(first_actions, returns, n_actions):
        scores = torch.full((n_actions,), float("-inf"))
        for a in range(n_actions):
            if (first_actions == a).any():
                scores[a] = returns[first_actions == a].mean()
        return scores

    grading.assert_check("03_planner", first_action_scores, "returns (n_actions,) float scores")
    grading.assert_check("03_planner", first_action_scores, 2, seed=1)
    right = first_action_scores

    def first_action_scores(first_actions, returns, n_actions):  # untried actions score 0
        return torch.nan_to_num(right(first_actions, returns, n_actions), neginf=0.0)

    with pytest.raises(AssertionError, match="an action no candidate tried scores -inf"):
        grading.assert_check("03_planner", first_action_scores, 2, seed=1)
    with pytest.raises(ValueError, match="check"):
        grading.assert_check("03_planner", first_action_scores, 3)


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
        assert not grade.all_flags, (exercise_id, grade.all_flags)
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


def test_crude_failures_cost_only_their_checks(session, tmp_path):
    path = write_variant(ROOT / "exercises" / "solutions" / "02_rollout.ipynb",
                         tmp_path / "02_rollout.ipynb", {
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
    before = path.read_bytes()
    grade = grade_notebook(path, session=session, seed=5, timeout=4)
    assert path.read_bytes() == before
    status = sorted((r.status, r.check) for r in grade.results if r.status != "passed")
    assert status == [("timeout", "dones: termination_fn, when given, replaces the head"),
                      ("timeout", "rewards: predicted until the first done, zero after it")]
    assert grade.score == 7 and grade.restarts == 0
    assert any("raised SystemExit" in note for note in grade.notes)
    assert any("printed too much" in note for note in grade.notes)
    assert len(json.dumps(grade.to_dict())) < 100_000  # the floods were not kept


# -- the gradebook ------------------------------------------------------------------------------


def test_gradebook_files(tmp_path):
    result = grading.CheckResult("01_model_loss", "one_step_loss", "delta", 2.0, 2.0, "passed")
    flagged = grading.CheckResult("02_rollout", "imagine", "obs", 0.0, 3.0, "failed",
                                  "-> runs the library's MLPWorldModel.imagine",
                                  ["library: the library's MLPWorldModel.imagine"])
    grades = [NotebookGrade("a/01.ipynb", "alice", "01_model_loss", [result]),
              NotebookGrade("=2+5.ipynb", "=2+5", "02_rollout", [flagged])]
    book, results, full = write_gradebook(grades, tmp_path / "out", {"seed": 1})
    with book.open(encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table == [
        ["student", "01_model_loss", "02_rollout", "total", "max_total", "flags"],
        ["'=2+5", "", "0", "0", "5", "02_rollout: library: the library's MLPWorldModel.imagine"],
        ["alice", "2", "", "2", "5", ""]]
    with results.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["passed", "failed"]
    assert rows[1]["notebook"] == "'=2+5.ipynb" and rows[1]["message"].startswith("'->")
    data = json.loads(full.read_text(encoding="utf-8"))
    assert data["notebooks"][1]["max_score"] == 3.0 and data["settings"] == {"seed": 1}


def test_the_gradebook_is_on_disk_as_soon_as_a_notebook_is_graded(tmp_path):
    book = Gradebook(tmp_path, {"01_model_loss": 8.0, "02_rollout": 9.0}, {"seed": 2})
    header = ["student", "01_model_loss", "02_rollout", "total", "max_total", "flags"]
    assert list(csv.reader(book.book_path.open(encoding="utf-8"))) == [header]
    result = grading.CheckResult("01_model_loss", "one_step_loss", "delta", 2.0, 2.0, "passed")
    book.add(NotebookGrade("a/01.ipynb", "alice", "01_model_loss", [result]))
    assert list(csv.reader(book.book_path.open(encoding="utf-8"))) == [
        header, ["alice", "2", "", "2", "17", ""]]
    assert len(list(csv.DictReader(book.results_path.open(encoding="utf-8")))) == 1
    data = json.loads(book.json_path.read_text(encoding="utf-8"))
    assert [n["student"] for n in data["notebooks"]] == ["alice"]
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then moved into place


@pytest.mark.parametrize("text, safe", [("=2+5", "'=2+5"), ("+1", "'+1"), ("-1", "'-1"),
                                        ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
                                        ("\rx", "'\rx"), ("alice", "alice"), ("2", "2")])
def test_neutralise_spreadsheet_formulas(text, safe):
    assert neutralise(text) == safe
