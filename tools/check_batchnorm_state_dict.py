"""Check that batch-norm buffers cross between adjoint and PyTorch in both directions.

Run it by hand from the crate root (needs PyTorch and ``pip install safetensors numpy``;
``safetensors.torch.save_file`` needs NumPy):

    python3 tools/check_batchnorm_state_dict.py

1. PyTorch trains the model below for a few steps (float64, so its running statistics and
   ``num_batches_tracked`` move) and saves its ``state_dict`` with ``save_file``: the file
   PyTorch writes, ``num_batches_tracked`` as a 0-d ``int64``.
2. The ignored Rust test ``torch_state_dict_cross_check`` in ``tests/norm.rs`` loads it into
   the same adjoint model, compares its eval-mode output with PyTorch's, runs one more
   training step on the batch PyTorch ran it on (output compared too) and saves its own
   files, in float64 and in float32.
3. Each file is loaded back into a fresh PyTorch model with ``load_state_dict(strict=True)``
   and every tensor, the buffers included, is compared with PyTorch's own state after the
   same step; ``num_batches_tracked`` must arrive as ``int64`` with the exact count.

The Rust test suite does not depend on this script.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
WORK = REPO_ROOT / "target" / "batchnorm_check"


def conv_bn() -> nn.Sequential:
    """The `conv_bn` model of tests/norm.rs."""
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4, affine=False),
                         nn.BatchNorm2d(4, track_running_stats=False))


def encode(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": t.detach().double().reshape(-1).tolist()}


def main() -> None:
    torch.set_default_dtype(torch.float64)
    gen = torch.Generator().manual_seed(7)
    model = conv_bn()
    with torch.no_grad():
        for bn in (model[1],):
            bn.weight.copy_(torch.randn(3, generator=gen))
            bn.bias.copy_(torch.randn(3, generator=gen))
    model.train()
    for _ in range(3):
        model(torch.randn(2, 2, 4, 4, generator=gen) * 1.5 + 0.5)
    WORK.mkdir(parents=True, exist_ok=True)
    torch_file = WORK / "torch.safetensors"
    save_file(model.state_dict(), str(torch_file))
    header = load_file(str(torch_file))
    assert header["1.num_batches_tracked"].dtype == torch.int64, header["1.num_batches_tracked"].dtype
    assert header["1.num_batches_tracked"].shape == (), header["1.num_batches_tracked"].shape
    print(f"PyTorch wrote {torch_file.name}: {list(model.state_dict().keys())}")

    x_eval = torch.randn(3, 2, 4, 4, generator=gen)
    model.eval()
    with torch.no_grad():
        y_eval = model(x_eval)
    model.train()
    x_step = torch.randn(2, 2, 4, 4, generator=gen) * 0.5 - 1.0
    with torch.no_grad():
        y_step = model(x_step)
    after = copy.deepcopy(model.state_dict())

    check = WORK / "check.json"
    outputs = {"f64": WORK / "adjoint_f64.safetensors", "f32": WORK / "adjoint_f32.safetensors"}
    check.write_text(json.dumps({"torch_file": str(torch_file), "x_eval": encode(x_eval), "y_eval": encode(y_eval),
                                 "x_step": encode(x_step), "y_step": encode(y_step),
                                 "out_f64": str(outputs["f64"]), "out_f32": str(outputs["f32"])}))
    cmd = ["cargo", "test", "--release", "--test", "norm", "--", "--ignored", "--exact", "torch_state_dict_cross_check",
           "--nocapture"]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO_ROOT, env={**os.environ, "ADJOINT_NORM_CHECK": str(check)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the Rust side failed:\n{done.stdout}\n{done.stderr}")
    print("\n".join(line for line in done.stdout.splitlines() if "adjoint" in line or "test " in line))

    for kind, path in outputs.items():
        state = load_file(str(path))
        dtype = torch.float64 if kind == "f64" else torch.float32
        fresh = conv_bn().to(dtype)
        print(f"{path.name}: load_state_dict(strict=True): {fresh.load_state_dict(state, strict=True)}")
        tolerance = 1e-12 if kind == "f64" else 1e-6
        for name, expected in after.items():
            got = fresh.state_dict()[name]
            if expected.dtype == torch.int64:
                assert state[name].dtype == torch.int64 and state[name].shape == (), (name, state[name])
                assert int(got) == int(expected), (name, int(got), int(expected))
            else:
                diff = (got.double() - expected).abs().max().item()
                assert diff <= tolerance * max(1.0, expected.abs().max().item()), (name, diff)
        counts = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
        print(f"  every tensor matches PyTorch's after the same step; counts {counts}")
    print("all checks passed")


if __name__ == "__main__":
    main()
