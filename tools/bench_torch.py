"""PyTorch's figures for the table `cargo bench --bench table` prints.

Run by hand right after the Rust table, on the same machine, to compare in one sitting
(the machines are noisy: compare ratios, not absolute numbers across runs):

    python3 tools/bench_torch.py

Median milliseconds per call, float32, CPU; fwd+bwd = forward plus gradients for input and weight.
"""
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


def median_ms(f, budget=1.0):
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


def main():
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| workload | fwd ms | fwd+bwd ms |")
    print("|---|---|---|")
    for name, transposed, xs, ws, s, p, op in WORKLOADS:
        x = torch.rand(xs, requires_grad=True)
        w = torch.rand(ws, requires_grad=True)

        def forward():
            if transposed:
                return F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op)
            return F.conv2d(x, w, stride=s, padding=p)

        def both():
            y = forward()
            y.backward(torch.ones_like(y))

        with torch.no_grad():
            fwd = median_ms(forward)
        print(f"| {name} | {fwd:.2f} | {median_ms(both):.2f} |")

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
    batch = torch.rand(64, 1, 28, 28)
    for name, model in [("E2E training step, batch 64, 28×28", small), ("autoencoder example's step, batch 64", example)]:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad()
            loss = F.mse_loss(model(batch), batch)
            loss.backward()
            opt.step()

        ms = median_ms(step, budget=2.0)
        print(f"| {name} | | {ms:.2f} ({1000 / ms:.0f} steps/s) |")


if __name__ == "__main__":
    main()
