"""python -m data: list the built-in suite (families, counts, splits) and show formatted examples.

    python -m data                 # the built-in suite
    python -m data --sni           # the SNI collection in ../shared/data/sni
    python -m data --show 3        # three formatted examples per split
    python -m data --names test    # the names of one split, comma-separated (for scripts)
    python -m data --names train --per-family 3   # at most 3 tasks of each family
"""
import argparse
import random
import sys
from collections import Counter

from data.tasks import HELD_OUT_FAMILIES, SEED, builtin_tasks, splits


def main():
    p = argparse.ArgumentParser(description="List the task suite and print formatted examples.")
    p.add_argument("--seed", type=int, default=SEED, help="suite seed")
    p.add_argument("--sni", nargs="?", const="default", default=None, help="list an SNI folder instead (default: ../shared/data/sni)")
    p.add_argument("--show", type=int, default=2, help="formatted examples to print per split")
    p.add_argument("--model", default=None, help="model folder whose chat template formats the examples")
    p.add_argument("--names", choices=["train", "val", "test"], help="print one split's task names, comma-separated, and exit")
    p.add_argument("--per-family", type=int, default=0, help="with --names: at most this many tasks per family (0 = all)")
    a = p.parse_args()
    if a.names:
        tasks = builtin_tasks(a.seed)
        names, seen = [], Counter()
        for n in splits(tasks, a.seed)[a.names]:
            seen[tasks[n].family] += 1
            if not a.per_family or seen[tasks[n].family] <= a.per_family:
                names.append(n)
        print(",".join(names))
        return
    if a.sni:
        from data.sni import DEFAULT_SNI_DIR, TaskFileError, load_sni
        try:
            tasks = load_sni(DEFAULT_SNI_DIR if a.sni == "default" else a.sni)
        except TaskFileError as e:
            sys.exit(f"error: {e}")
        print(f"{len(tasks)} SNI tasks; metrics: {dict(Counter(t.metric for t in tasks.values()))}")
        sp = {"train": sorted(tasks)}
    else:
        tasks = builtin_tasks(a.seed)
        sp = splits(tasks, a.seed)
        fams = Counter(t.family for t in tasks.values())
        print(f"{len(tasks)} built-in tasks in {len(fams)} families (seed {a.seed}); "
              f"held-out families: {', '.join(HELD_OUT_FAMILIES)}\n")
        print(f"{'family':16s} {'tasks':>5s} {'train':>5s} {'val':>4s} {'test':>4s}  metric")
        for fam in sorted(fams):
            names = [n for n, t in tasks.items() if t.family == fam]
            cnt = {k: sum(n in v for n in names) for k, v in sp.items()}
            metrics = ",".join(sorted({tasks[n].metric for n in names}))
            print(f"{fam:16s} {fams[fam]:5d} {cnt['train']:5d} {cnt['val']:4d} {cnt['test']:4d}  {metrics}")
        print(f"{'total':16s} {len(tasks):5d} {len(sp['train']):5d} {len(sp['val']):4d} {len(sp['test']):4d}")
    if a.show:
        import model as M
        tok = M.load_tokenizer(a.model)
        from data.format import messages_for
        rng = random.Random(0)
        for split, names in sp.items():
            for name in rng.sample(names, min(a.show, len(names))):
                t = tasks[name]
                ex = t.examples("test", 1)[0]
                text = tok.apply_chat_template(messages_for(ex.input) + [{"role": "assistant", "content": ex.answer}],
                                               add_generation_prompt=False, tokenize=False)
                print(f"\n--- [{split}] {name} ({t.family}, {t.metric})\ndescription: {t.train_descriptions[0]}\n{text}", end="")


if __name__ == "__main__":
    main()
