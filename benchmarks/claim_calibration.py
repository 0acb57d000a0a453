"""How often `check` says HOLDS: under no true effect (should be ≤ 2.5 %) and under true
effects of 0.5, 1 and 2 standard deviations of the per-seed noise (power), for every claim
kind at 3, 5 and 10 seeds — beside the previous percentile bootstrap's rate.

    python benchmarks/claim_calibration.py [--runs 4000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.claim_simulation import KINDS, holds_rate, old_bootstrap_holds_rate

SEEDS = (3, 5, 10)
EFFECTS = (0.0, 0.5, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000, help="simulated runs per cell")
    runs = parser.parse_args().runs
    print(f"HOLDS rate over {runs} simulated runs (effect in noise standard deviations)")
    print(f"{'kind':<22}{'n':>4}" + "".join(f"{f'effect {e:g}':>12}" for e in EFFECTS))
    for kind in KINDS:
        for n in SEEDS:
            rates = [holds_rate(kind, n, effect, runs) for effect in EFFECTS]
            print(f"{kind:<22}{n:>4}" + "".join(f"{r:>12.1%}" for r in rates))
    print("previous method (percentile bootstrap), value claim, effect 0:")
    for n in SEEDS:
        print(f"{'':<22}{n:>4}{old_bootstrap_holds_rate(n, runs):>12.1%}")


if __name__ == "__main__":
    main()
