"""PyTorch's figures for the table `cargo bench --bench table` prints: the same rows, in the
same order, on 1 and 2 threads (`torch.set_num_threads`; `BENCH_THREADS=2` for one count).

Run by hand right after the Rust table, on the same machine, to compare in one sitting
(the machines are noisy: compare ratios, not absolute numbers across runs), or through
`tools/paired_rounds.py`, which interleaves the two:

    python3 tools/bench_torch.py

Median milliseconds per call, float32, CPU. fwd = forward under `torch.no_grad()`; fwd+bwd =
forward plus the gradients of every input (the convs: input and weight) from a gradient of ones.
"""
import os
import statistics
import time

import torch
import torch.nn.functional as F

WORKLOADS = [
    ("W1 conv2d x[64,1,28,28] w[16,1,3,3] s2 p1", False, (64, 1, 28, 28), (16, 1, 3, 3), 2, 1, 0),
    ("W2 conv2d x[64,16,14,14] w[32,16,3,3] s2 p1", False, (64, 16, 14, 14), (32, 16, 3, 3), 2, 1, 0),
    ("W3 convT2d x[64,32,7,7] w[32,16,3,3] s2 p1 op1", True, (64, 32, 7, 7), (32, 16, 3, 3), 2, 1, 1),
    ("W4 convT2d x[64,16,14,14] w[16,1,3,3] s2 p1 op1", True, (64, 16, 14, 14), (16, 1, 3, 3), 2, 1, 1),
    ("W5 conv2d x[8,64,56,56] w[64,64,3,3] s1 p1", False, (8, 64, 56, 56), (64, 64, 3, 3), 1, 1, 0),
    ("W6 convT2d x[8,64,28,28] w[64,32,4,4] s2 p1", True, (8, 64, 28, 28), (64, 32, 4, 4), 2, 1, 0),
]


def median_ms(f, budget=0.5):
    f()
    start = time.perf_counter()
    f()
    once = max(time.perf_counter() - start, 1e-6)
    runs = max(5, min(200, int(budget / once)))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def both(forward):
    """Forward and backward from a gradient of ones (a scalar loss: from 1)."""
    def run():
        y = forward()
        y.backward(torch.ones_like(y))
    return run


def op_rows():
    """benches/table.rs's `op_rows`: the ops of the dense-prediction models on a U-Net's sizes."""
    target = torch.tensor(
        [[[(n + i * 3 + j * 7) % 5 for j in range(64)] for i in range(64)] for n in range(16)])
    running = lambda: (torch.zeros(32), torch.ones(32))  # noqa: E731
    return [
        ("max_pool2d 2×2 x[16,32,64,64]", [(16, 32, 64, 64)], lambda x: F.max_pool2d(x, 2)),
        ("upsample nearest ×2 x[16,32,32,32]", [(16, 32, 32, 32)],
         lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest")),
        ("upsample bilinear ×2 x[16,32,32,32]", [(16, 32, 32, 32)],
         lambda x: F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)),
        ("batch_norm train x[16,32,64,64]", [(16, 32, 64, 64), (32,), (32,)],
         lambda x, w, b: F.batch_norm(x, *running(), w, b, training=True)),
        ("concat channels 2× x[16,32,64,64]", [(16, 32, 64, 64), (16, 32, 64, 64)],
         lambda a, b: torch.cat([a, b], 1)),
        ("cross_entropy per pixel x[16,5,64,64]", [(16, 5, 64, 64)], lambda x: F.cross_entropy(x, target)),
    ]


def models():
    small = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), torch.nn.Sigmoid(),
    )
    # adjoint::train::conv_autoencoder(64): the same, with a 7×7 conv to a 64-long code and back.
    example = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 7),
        torch.nn.ConvTranspose2d(64, 32, 7), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), torch.nn.Sigmoid(),
    )
    return [("E2E training step, batch 64, 28×28", small), ("autoencoder example's step, batch 64", example)]


def main():
    threads = [int(t) for t in os.environ.get("BENCH_THREADS", "1,2").split(",")]
    torch.manual_seed(0)
    print(f"torch {torch.__version__}")
    print("| workload | threads | fwd ms | fwd+bwd ms |")
    print("|---|---|---|---|")
    for name, transposed, xs, ws, s, p, op in WORKLOADS:
        x = torch.rand(xs, requires_grad=True)
        w = torch.rand(ws, requires_grad=True)

        def forward():
            if transposed:
                return F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op)
            return F.conv2d(x, w, stride=s, padding=p)

        for t in threads:
            torch.set_num_threads(t)
            with torch.no_grad():
                fwd = median_ms(forward)
            print(f"| {name} | {t} | {fwd:.3f} | {median_ms(both(forward)):.3f} |")

    for name, shapes, f in op_rows():
        inputs = [torch.rand(s, requires_grad=True) for s in shapes]
        for t in threads:
            torch.set_num_threads(t)
            with torch.no_grad():
                fwd = median_ms(lambda: f(*inputs))
            print(f"| {name} | {t} | {fwd:.3f} | {median_ms(both(lambda: f(*inputs))):.3f} |")

    batch = torch.rand(64, 1, 28, 28)
    for name, model in models():
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            loss = F.mse_loss(model(batch), batch)
            loss.backward()
            opt.step()

        for t in threads:
            torch.set_num_threads(t)
            ms = median_ms(step, budget=1.0)
            print(f"| {name} | {t} | | {ms:.3f} ({1000 / ms:.0f} steps/s) |")


if __name__ == "__main__":
    main()
