"""course/: assignments made from marked regions of the source. Every blanked copy must fail its
check and the project itself must pass every check (slow: each runs its grading tests), and the
CLI's refusals are one line."""
import json

import pytest

from course import questions, tool
from course.__main__ import main

NUMBERS = list(tool.assignments())


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of `python -m course ARGS`; an error is sys.exit("error: ...")."""
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    if isinstance(code, str):  # sys.exit(message): Python prints it to stderr and exits 1
        code, err = 1, err + code + "\n"
    return code, out, err


def test_list_has_one_line_per_assignment_starting_with_its_number(capsys):
    code, out, _ = run_cli(["list"], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(NUMBERS)
    for n, line in zip(NUMBERS, lines):
        assert line.split()[0] == str(n) and "read:" in line and "min" in line


def test_every_region_is_marked_once_per_hint_and_its_stub_compiles():
    files = tool.project_files(tool.ROOT)
    for n in NUMBERS:
        texts = tool.blanked(tool.get(n), tool.ROOT, files)
        assert texts, n
        for f, text in texts.items():
            compile(text, f, "exec")  # the stub keeps the file valid Python
            assert "NotImplementedError(\n" in text and f"assignment {n} (" in text


def test_grading_tests_exist_and_questions_match_their_grader():
    for a in tool.assignments().values():
        for t in a["tests"]:
            assert (tool.ROOT / t.split("::")[0]).is_file(), t
    assert tuple(tool.get(6)["questions"]) == questions.QUESTIONS


@pytest.mark.parametrize("args", [["make", "9", "--out", "x"], ["check", "0"], ["make", "one", "--out", "x"]])
def test_a_bad_number_is_one_error_line_listing_the_numbers(args, capsys, tmp_path):
    args = [a if a != "x" else str(tmp_path / "copy") for a in args]
    code, out, err = run_cli(args, capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and ", ".join(map(str, NUMBERS)) in err


def test_make_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, out, err = run_cli(["make", "1", "--out", str(tmp_path)], capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and "notes.txt" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "mine"


def test_make_writes_the_copy_without_the_solutions_and_may_redo_it(tmp_path, capsys):
    out = tmp_path / "c6"
    for _ in range(2):  # the second time: a folder this command wrote
        code, _, err = run_cli(["make", "6", "--out", str(out)], capsys)
        assert code == 0, err
    assert (out / "eval.py").read_text().count("raise NotImplementedError(") == 1
    assert not (out / "course" / "solutions").exists()
    template = json.loads((out / "course" / "answers" / "6.json").read_text())
    assert template["results"] is None and set(template["answers"]) == set(questions.QUESTIONS)


def test_questions_are_graded_on_the_results_file_they_name(tmp_path):
    solution = json.loads((tool.ROOT / "course/solutions/6.json").read_text())
    assert all(ok for _, ok, _ in questions.grade(tool.ROOT / "course/solutions/6.json", tool.ROOT))
    wrong = dict(solution, answers={**solution["answers"], "stronger_control": "t2l_random", "t2l_minus_random": 20.0})
    (tmp_path / "a.json").write_text(json.dumps(wrong))
    failed = {q for q, ok, _ in questions.grade(tmp_path / "a.json", tool.ROOT) if not ok}
    assert failed == {"question stronger_control", "question t2l_minus_random"}
    # a results file without the controls or the steering test: each question says what to run
    r = json.loads((tool.ROOT / solution["results"]).read_text())
    r["tasks"] = {t: {"T2L-S": row["T2L-S"]} for t, row in r["tasks"].items()}
    r.pop("steering")
    (tmp_path / "r.json").write_text(json.dumps(r))
    (tmp_path / "a.json").write_text(json.dumps(dict(solution, results="r.json")))
    rows = questions.grade(tmp_path / "a.json", tmp_path)
    assert not any(ok for _, ok, _ in rows) and all("run" in why for _, _, why in rows)


@pytest.mark.slow
@pytest.mark.parametrize("n", NUMBERS)
def test_a_blanked_copy_fails_its_check_and_the_project_passes_it(n, tmp_path, capsys):
    code, _, err = run_cli(["make", str(n), "--out", str(tmp_path / "copy")], capsys)
    assert code == 0, err
    code, out, _ = run_cli(["check", str(n), "--dir", str(tmp_path / "copy")], capsys)
    assert code == 1 and "FAIL" in out and "NotImplementedError" in out, out
    code, out, _ = run_cli(["check", str(n)], capsys)
    assert code == 0 and "FAIL" not in out, out
