"""adjoint against PyTorch in interleaved rounds: the performance table in one command.

    python3 tools/paired_rounds.py                     # five rounds, 1 and 2 threads
    python3 tools/paired_rounds.py --rounds 9
    BENCH_THREADS=2 python3 tools/paired_rounds.py     # 2 threads only

Each round runs adjoint's table (`cargo bench --bench table`) and then PyTorch's
(`tools/bench_torch.py`), so both libraries see the same state of the machine; on a shared
2-core machine a single run of either swings by ±25% or more. Prints, per row and thread
count, the median of the rounds' per-call medians (ms, f32) for the forward (under no_grad)
and for forward + backward, and for each the ratio adjoint ÷ PyTorch: the median of the
per-round ratios (below 1: adjoint is faster), and fastest against fastest.

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


def run(cmd):
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def ratios(ours, theirs, i, k):
    """Column `k` of row `i`: (median of adjoint, median of PyTorch, median ratio, fastest
    ratio), or None where the row has no such figure."""
    a = [r[i][k] for r in ours]
    t = [r[i][k] for r in theirs]
    if None in a or None in t:
        return None
    return (statistics.median(a), statistics.median(t),
            statistics.median(x / y for x, y in zip(a, t)), min(a) / min(t))


def cells(figures):
    if figures is None:
        return "| | | |"
    a, t, median, fastest = figures
    return f"| {a:.3f} | {t:.3f} | {median:.2f} ({fastest:.2f}) |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    if rounds < 1:
        sys.exit("--rounds must be at least 1")

    ours, theirs, names = [], [], None
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        # adjoint: | name | threads | fwd ms | fwd GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s (or steps/s) |
        a = [(number(c[2]), number(c[4])) for c in rows(run(["cargo", "bench", "-q", "--bench", "table"]))]
        # PyTorch: | name | threads | fwd ms | fwd+bwd ms |, the same rows in the same order.
        t = rows(run([sys.executable, "tools/bench_torch.py"]))
        if len(a) != len(t):
            sys.exit(f"the two tables have {len(a)} and {len(t)} rows: keep their rows in step")
        names = [(c[0], c[1]) for c in t]
        ours.append(a)
        theirs.append([(number(c[2]), number(c[3])) for c in t])

    print(f"{rounds} interleaved rounds; ms per call, median of the rounds; f32; "
          "ratio = adjoint ÷ PyTorch, median of the rounds' ratios (fastest ÷ fastest)")
    print("| workload | threads | adjoint fwd | PyTorch fwd | fwd ratio "
          "| adjoint fwd+bwd | PyTorch fwd+bwd | fwd+bwd ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for i, (name, threads) in enumerate(names):
        print(f"| {name} | {threads} {cells(ratios(ours, theirs, i, 0))} {cells(ratios(ours, theirs, i, 1))[2:]}")


if __name__ == "__main__":
    main()
