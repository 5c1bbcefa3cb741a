"""adjoint against PyTorch in interleaved rounds: the README's Performance table in one command.

    python3 tools/paired_rounds.py            # five rounds
    python3 tools/paired_rounds.py --rounds 9

Each round runs adjoint's table (`cargo bench --bench table`) and then PyTorch's
(`tools/bench_torch.py`), so both libraries see the same state of the machine; on a shared
2-core machine a single run of either swings by ±25% or more. Prints, per workload, the fastest
and the median of the rounds' per-call medians (ms, f32), and two ratios adjoint ÷ PyTorch:
the median of the per-round ratios, and fastest against fastest.

Needs PyTorch (`pip install torch`); the project's tests do not.
"""
import argparse
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def rows(text):
    """The data rows of a Markdown table, as lists of stripped cells."""
    out = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---") and "workload" not in line:
            out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def number(cell):
    """`5.90` or `5.90 (169 steps/s)` -> 5.90; an empty cell -> None."""
    return float(cell.split()[0]) if cell else None


def rate(cell):
    """adjoint's last column: a bare number is GFLOP/s, the training rows say steps/s."""
    return cell if cell.endswith("steps/s") else f"{cell} GFLOP/s"


def run(cmd):
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    if rounds < 1:
        sys.exit("--rounds must be at least 1")

    ours, theirs, names = [], [], None
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        # adjoint: | name | fwd ms | fwd GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s (or steps/s) |
        a = [(number(c[1]), number(c[3]), rate(c[4])) for c in rows(run(["cargo", "bench", "-q", "--bench", "table"]))]
        # PyTorch: | name | fwd ms | fwd+bwd ms |, the same rows in the same order.
        t = rows(run([sys.executable, "tools/bench_torch.py"]))
        if len(a) != len(t):
            sys.exit(f"the two tables have {len(a)} and {len(t)} rows: keep their workloads in step")
        names = [c[0] for c in t]
        ours.append(a)
        theirs.append([(number(c[1]), number(c[2])) for c in t])

    print(f"{rounds} interleaved rounds; ms per call, fastest / median of the rounds; f32")
    print("| workload | adjoint fwd | adjoint fwd+bwd | PyTorch fwd+bwd "
          "| adjoint ÷ PyTorch, median of rounds | fastest ÷ fastest |")
    print("|---|---|---|---|---|---|")
    for i, name in enumerate(names):
        fwd = [r[i][0] for r in ours if r[i][0] is not None]
        a = [r[i][1] for r in ours]
        t = [r[i][1] for r in theirs]
        fastest = min(ours, key=lambda r: r[i][1])[i][2]
        ratio = statistics.median(x / y for x, y in zip(a, t))
        fwd_cell = f"{min(fwd):.2f}" if fwd else ""
        print(f"| {name} | {fwd_cell} | {min(a):.2f} ({fastest}) / {statistics.median(a):.2f} "
              f"| {min(t):.2f} / {statistics.median(t):.2f} | {ratio:.2f} | {min(a) / min(t):.2f} |")


if __name__ == "__main__":
    main()
