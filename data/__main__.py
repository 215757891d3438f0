"""python -m data: list a task collection (families, counts, splits) and show examples.

    python -m data                 # the built-in suite
    python -m data --data sni      # the SNI collection shipped in data/sni120/
    python -m data --data FOLDER   # any folder in SNI's layout
    python -m data --show 3        # three examples per split: definition, input, answer
    python -m data --names test    # the names of one split, comma-separated (for scripts)
    python -m data --names train --per-family 3   # at most 3 tasks of each family
"""
import random
import sys
from collections import Counter

from data.collection import load_collection
from data.tasks import HELD_OUT_FAMILIES, SEED
from common import ArgParser, UserError  # the one-line-error parser and the base error (plumbing, common.py)


def main(argv=None):
    p = ArgParser(description="List a task collection and print examples.")
    p.add_argument("--data", default="builtin", help="builtin | sni | a folder of SNI task files")
    p.add_argument("--seed", type=int, default=SEED, help="suite / split seed")
    p.add_argument("--show", type=int, default=2, help="examples to print per split")
    p.add_argument("--names", choices=["train", "val", "test"], help="print one split's task names, comma-separated, and exit")
    p.add_argument("--per-family", type=int, default=0, help="with --names: at most this many tasks per family (0 = all)")
    a = p.parse_args(argv)
    # Counts checked before anything is loaded: a negative one meant nothing (random.sample raised deep
    # inside, or --per-family -1 silently printed no names at all).
    for flag, value in (("--show", a.show), ("--per-family", a.per_family)):
        if value < 0:
            p.error(f"argument {flag}: expected 0 or more, got {value}")
    try:
        coll = load_collection(a.data, a.seed)
    except (UserError, OSError) as e:
        sys.exit(f"error: {e}")
    tasks, sp = coll.tasks, coll.splits
    if a.names:
        names, seen = [], Counter()
        for n in sp[a.names]:
            seen[tasks[n].family] += 1
            if not a.per_family or seen[tasks[n].family] <= a.per_family:
                names.append(n)
        print(",".join(names))
        return
    fams = Counter(t.family for t in tasks.values())
    held = f"; held-out families: {', '.join(HELD_OUT_FAMILIES)}" if coll.name == "builtin" else ""
    print(f"{len(tasks)} tasks in {len(fams)} families ({coll.name}, seed {a.seed}){held}\n")
    print(f"{'family':16s} {'tasks':>5s} {'train':>5s} {'val':>4s} {'test':>4s}  metric")
    for fam in sorted(fams):
        names = [n for n, t in tasks.items() if t.family == fam]
        cnt = {k: sum(n in v for n in names) for k, v in sp.items()}
        metrics = ",".join(sorted({tasks[n].metric for n in names}))
        print(f"{fam:16s} {fams[fam]:5d} {cnt['train']:5d} {cnt['val']:4d} {cnt['test']:4d}  {metrics}")
    print(f"{'total':16s} {len(tasks):5d} {len(sp['train']):5d} {len(sp['val']):4d} {len(sp['test']):4d}")
    rng = random.Random(0)
    for split, names in sp.items():
        for name in rng.sample(names, min(a.show, len(names))):
            t = tasks[name]
            ex = t.examples("test", 1)[0]
            print(f"\n--- [{split}] {name} ({t.family}, {t.metric})\ndefinition: {t.definition}"
                  f"\ndescription (T2L): {t.train_descriptions[0]}\ninput: {ex.input}\nanswer: {ex.answer}")


if __name__ == "__main__":
    main()
