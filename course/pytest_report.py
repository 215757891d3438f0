"""A pytest plugin for `python -m course check`: each test's outcome as one JSON line, in the file
named by $COURSE_REPORT, so that check reads results rather than pytest's screen output."""
import json
import os


def _write(test: str, passed: bool, why: str):
    with open(os.environ["COURSE_REPORT"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"test": test, "passed": passed, "why": why}) + "\n")


def _why(report) -> str:
    """The failure's last line (NotImplementedError: assignment N ...), or why it was skipped."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.splitlines()[0] if crash.message else ""
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return f"skipped: {report.longrepr[2]}"
    return (str(report.longrepr or "").strip().splitlines() or [""])[-1]


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        _write(report.nodeid, True, "")
    elif not report.passed:  # a failure in setup, call or teardown; a skip is not a pass either
        _write(report.nodeid, False, _why(report))


def pytest_collectreport(report):
    if report.failed:  # the test file does not import: every test in it fails
        _write(report.nodeid, False, _why(report))
