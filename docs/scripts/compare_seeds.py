"""Which runs moved between two ``per_seed.csv`` files (e.g. before and after a numerics change).

Usage: ``python docs/scripts/compare_seeds.py OLD/per_seed.csv NEW/per_seed.csv``. Prints, per
arm, every seed whose test accuracy or NFE differs, marks those that crossed the 0.98 line
(``kept_accuracy`` changed), and the totals.
"""
import csv
import sys


def load(path):
    """Rows of a ``per_seed.csv`` keyed by ``(arm, seed)``."""
    with open(path, newline="") as handle:
        return {(row["arm"], int(row["seed"])): row for row in csv.DictReader(handle)}


def main(old_path, new_path):
    old, new = load(old_path), load(new_path)
    arms = list(dict.fromkeys(arm for arm, _ in new))
    same = moved = crossed = 0
    for arm in arms:
        lines = []
        for (name, seed), row in sorted(new.items(), key=lambda item: item[0][1]):
            before = old.get((name, seed))
            if name != arm or before is None:
                continue
            if (before["test_accuracy"], before["nfe"]) == (row["test_accuracy"], row["nfe"]):
                same += 1
                continue
            moved += 1
            flip = before["kept_accuracy"] != row["kept_accuracy"]
            crossed += flip
            lines.append(f"{seed}: {before['test_accuracy']}/{before['nfe']} -> "
                         f"{row['test_accuracy']}/{row['nfe']}{' (crossed 0.98)' if flip else ''}")
        print(f"{arm}: {len(lines)} moved" + (": " + "; ".join(lines) if lines else ""))
    print(f"unchanged {same}, moved {moved}, crossed the 0.98 line {crossed}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    main(sys.argv[1], sys.argv[2])
