"""
python -m course list                        one line per assignment: what to write, what to read, the check's time
python -m course make N --out DIR            a copy of the project with assignment N blanked (a stub that says what to write)
python -m course check N [--dir DIR]         run the tests that grade N (in DIR, or in this project); PASS/FAIL per test
            [--answers FILE]                 assignment 6: the answers to grade (default: DIR/course/answers/6.json)
"""
import sys
import time

import common
from course import tool


def main(argv=None) -> int:
    p = common.ArgParser(prog="python -m course", description=__doc__.strip().splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the assignments, one line each")
    mk = sub.add_parser("make", help="write a copy of the project with one assignment blanked")
    mk.add_argument("n", metavar="N", help="the assignment's number")
    mk.add_argument("--out", required=True, help="a new (or empty) folder, or one this command wrote")
    ck = sub.add_parser("check", help="run the tests that grade one assignment")
    ck.add_argument("n", metavar="N", help="the assignment's number")
    ck.add_argument("--dir", default=None, help="the copy to grade (default: this project)")
    ck.add_argument("--answers", default=None, help="the answers file of an assignment with questions")
    a = p.parse_args(argv)
    try:
        if a.command == "list":
            for entry in tool.assignments().values():
                print(tool.describe(entry))
            return 0
        if a.command == "make":
            out, entry = tool.make(a.n, a.out), tool.get(a.n)
            print(f"wrote {out}: assignment {entry['n']}, {entry['title']} ({entry['where']}), is blanked.")
            if "answers" in entry:
                print(f"answer its questions in {out / entry['answers']}")
            print(f"grade it: python -m course check {entry['n']} --dir {out}")
            return 0
        t0 = time.time()
        rows = tool.check(a.n, a.dir, a.answers)
    except (common.UserError, OSError) as e:  # a user's mistake: one line, no traceback
        sys.exit(f"error: {e}")
    for name, ok, why in rows:
        why = why if len(why) <= 160 else why[:157] + "..."  # a stub's whole hint is in the source
        print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {why}" if why and not ok else ""))
    failed = sum(not ok for _, ok, _ in rows)
    print(f"assignment {a.n}: {len(rows) - failed} of {len(rows)} passed ({time.time() - t0:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
