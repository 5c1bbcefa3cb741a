"""Check that weights saved by adjoint load into PyTorch and compute the same thing.

Run it by hand from the crate root (needs PyTorch and ``pip install safetensors``):

    python3 tools/check_safetensors_in_torch.py [WEIGHTS]

WEIGHTS defaults to ``/tmp/ae/autoencoder.safetensors``; if that file does not exist it is
made first with

    cargo run --release --example autoencoder -- --epochs 1 --train-size 640 --val-size 64 --out-dir /tmp/ae

Then:

1. The file is loaded with ``safetensors.torch.load_file`` into the ``nn.Sequential`` documented
   at ``adjoint::train::conv_autoencoder`` with ``load_state_dict(strict=True)`` (every name
   and shape must match, nothing extra, nothing missing).
2. PyTorch's outputs on a few random inputs (float32, and float64 with the same weights) are
   written to a JSON file, and the ignored Rust test ``torch_cross_check`` in ``tests/nn.rs``
   loads the same weights with ``adjoint::nn::io::load`` and compares its outputs with them
   (float32 within 1e-5, float64 within 1e-12).
3. If ``../shared/data/mnist`` holds the MNIST test set, the example's ``--eval`` on it
   (validation = images 9000..9999) is compared with PyTorch's MSE on the same images.

The Rust test suite does not depend on this script.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = Path("/tmp/ae/autoencoder.safetensors")
MNIST = REPO_ROOT / ".." / "shared" / "data" / "mnist"


def conv_autoencoder(latent: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, latent, 7),
        nn.ConvTranspose2d(latent, 32, 7), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())


def run(cmd: list[str], env: dict | None = None) -> str:
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def encode(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": t.detach().double().reshape(-1).tolist()}


def read_idx_images(path: Path) -> torch.Tensor:
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    magic, n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in range(0, 16, 4))
    assert magic == 2051, magic
    pixels = torch.frombuffer(bytearray(data[16:16 + n * rows * cols]), dtype=torch.uint8)
    return pixels.reshape(n, 1, rows, cols).float() / 255.0


def main() -> None:
    weights = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_WEIGHTS
    if not weights.exists():
        run(["cargo", "run", "--release", "--example", "autoencoder", "--", "--epochs", "1",
             "--train-size", "640", "--val-size", "64", "--out-dir", str(weights.parent)])

    # 1. strict load
    state = load_file(str(weights))
    latent = state["4.weight"].shape[0]
    print(f"{weights}: {len(state)} tensors, dtypes {sorted({str(v.dtype) for v in state.values()})}, "
          f"latent {latent}")
    model = conv_autoencoder(latent)
    result = model.load_state_dict(state, strict=True)
    print(f"load_state_dict(strict=True): {result}")
    count = sum(p.numel() for p in model.parameters())
    print(f"parameters: {count}")

    # 2. outputs on random inputs, compared by the Rust test
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y32 = model.float()(x.float())
        y64 = model.double()(x)
    check = REPO_ROOT / "target" / "torch_cross_check.json"
    check.parent.mkdir(exist_ok=True)
    check.write_text(json.dumps({"weights": str(weights.resolve()), "latent": latent, "x": encode(x),
                                 "y32": encode(y32), "y64": encode(y64)}))
    out = run(["cargo", "test", "--release", "--test", "nn", "--", "--ignored", "--exact", "torch_cross_check",
               "--nocapture"], env={**os.environ, "ADJOINT_TORCH_CHECK": str(check)})
    print("\n".join(line for line in out.splitlines() if "torch" in line))

    # 3. --eval on MNIST against PyTorch's MSE
    files = sorted(MNIST.glob("*images-idx3-ubyte*")) if MNIST.exists() else []
    if not files:
        print(f"note: no MNIST images in {MNIST}; skipping the --eval comparison")
        return
    images = read_idx_images(files[0])
    val = images[9000:]
    with torch.no_grad():
        model = model.float()
        mse = sum(((model(b) - b) ** 2).double().sum().item() for b in val.split(256)) / val.numel()
    out = run(["cargo", "run", "--release", "--example", "autoencoder", "--", "--eval", str(weights),
               "--data-dir", str(MNIST), "--latent", str(latent)])
    rust = float(re.search(r"validation MSE ([0-9.]+)", out).group(1))
    print(f"MNIST validation ({len(val)} images): adjoint --eval {rust:.5f}, PyTorch {mse:.5f}")
    assert abs(rust - mse) <= 6e-6, (rust, mse)
    print("all checks passed")


if __name__ == "__main__":
    main()
