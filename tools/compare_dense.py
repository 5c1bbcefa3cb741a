"""adjoint's segmentation and key-point examples beside their PyTorch twins, on the same data.

    cargo build --release --examples
    python3 tools/compare_dense.py [--seeds 0 1 2] [--upsample transposed resize] [--tasks segmentation keypoints]

For each task, upsampling kind and seed: the example exports its scenes (`--export-data`), then
the example and its twin (tools/twin_<task>.py) train on them one after the other (never at
the same time: the machine's cores are shared), each with its default settings and that seed.
Prints one line per run and, per task and upsampling kind, the means over the seeds of the
final score (mean IoU, or F1 within 2 px and the mean localisation error) and of the median
training step, as the README's table shows them.
"""
import argparse
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"

# The last epoch line of each example, e.g.
# "epoch  5: train loss 0.0731  val loss 0.0774  pixel acc 0.9793  mIoU 0.7723  IoU [...]  step 335 ms  (22.2 s)"
PATTERNS = {
    "segmentation": {"score": re.compile(r"mIoU (\d\.\d+)")},
    "keypoints": {"score": re.compile(r"F1 (\d\.\d+)"), "error": re.compile(r"error (\d+\.\d+) px")},
}
STEP = re.compile(r"step (\d+) ms")


def adjoint(task, seed, upsample, out_dir):
    """Runs the example and returns the scores of its last epoch."""
    binary = ROOT / "target" / "release" / "examples" / task
    cmd = [str(binary), "--seed", str(seed), "--upsample", upsample, "--out-dir", str(out_dir)]
    lines = [l for l in run(cmd).splitlines() if l.startswith("epoch")]
    last = lines[-1]
    result = {name: float(p.search(last).group(1)) for name, p in PATTERNS[task].items()}
    result["step_ms"] = statistics.median(float(STEP.search(l).group(1)) for l in lines)
    return result


def twin(task, seed, upsample, data, threads):
    """Runs the PyTorch twin and returns its `RESULT` line."""
    cmd = [sys.executable, str(TOOLS / f"twin_{task}.py"), "--data", str(data), "--seed", str(seed), "--upsample", upsample,
           "--threads", str(threads)]
    line = next(l for l in run(cmd).splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--upsample", nargs="+", default=["transposed", "resize"])
    parser.add_argument("--tasks", nargs="+", default=["segmentation", "keypoints"], choices=list(PATTERNS))
    parser.add_argument("--twin-threads", type=int, default=2,
                        help="PyTorch's threads (1 on a machine other jobs load: its 2 OpenMP threads then wait "
                             "on each other, and the run takes many times as long; the scores do not depend on it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = pathlib.Path(scratch)
        for task in args.tasks:
            for upsample in args.upsample:
                rows = {"adjoint": [], "PyTorch": []}
                for seed in args.seeds:
                    data = scratch / f"{task}-seed{seed}"
                    if not data.exists():
                        binary = ROOT / "target" / "release" / "examples" / task
                        run([str(binary), "--seed", str(seed), "--export-data", str(data)])
                    ours = adjoint(task, seed, upsample, scratch / "out")
                    theirs = twin(task, seed, upsample, data, args.twin_threads)
                    theirs = {
                        "score": theirs["miou"] if task == "segmentation" else theirs["f1"],
                        **({"error": theirs["error_px"]} if task == "keypoints" else {}),
                        "step_ms": theirs["step_ms"],
                    }
                    for name, r in (("adjoint", ours), ("PyTorch", theirs)):
                        rows[name].append(r)
                        print(f"{task} {upsample} seed {seed} {name:8}: {r}", flush=True)
                for name, results in rows.items():
                    means = {k: statistics.mean(r[k] for r in results) for k in results[0]}
                    shown = "  ".join(f"{k} {v:.4f}" for k, v in means.items())
                    print(f"MEAN {task} {upsample} {name:8} over seeds {args.seeds}: {shown}", flush=True)


if __name__ == "__main__":
    main()
