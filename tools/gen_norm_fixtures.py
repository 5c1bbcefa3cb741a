"""Generate PyTorch reference fixtures for adjoint's batch normalisation.

Run it by hand from anywhere (it needs PyTorch; CPU is enough):

    python3 tools/gen_norm_fixtures.py

It writes ``tests/fixtures/norm_reference.json``, which is committed: the Rust
tests (``tests/norm.rs``) read the JSON and need neither Python nor PyTorch.
Everything is float64 and seeded, so the output is deterministic. The file holds:

``ops``
    ``F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum,
    eps)`` on ``[n, c]``, ``[n, c, l]``, ``[n, c, h, w]`` and ``[n, c, d, h, w]``
    inputs, in training and eval mode, with and without ``weight``/``bias`` and
    running statistics: the output, the gradients of ``x``, ``weight`` and
    ``bias`` for a random upstream gradient ``g`` (``y.backward(g)``), and the
    running statistics after the call (``F.batch_norm`` updates them in place in
    training mode).

``layers``
    ``nn.BatchNorm{1,2,3}d`` with several settings (momentum 0.1, 0.3 and
    ``None``, ``affine=False``, ``track_running_stats=False``, another ``eps``),
    given random initial ``weight``/``bias``: a few training-mode steps, each
    with its input, upstream gradient, output, gradients and the buffers after
    it (one step runs under ``torch.no_grad()``, which does not stop the update),
    then ``.eval()`` and the output on one more input.

``state_dict``
    ``state_dict()`` names, shapes and dtypes of models mixing conv, linear and
    batch-norm layers (nested ``nn.Sequential`` included), in PyTorch's order.

``nan``
    NaN and infinity in the input (and in the running statistics), in training
    and eval mode: output, gradients and running statistics, with non-finite
    numbers written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# One layout for every fixture file: one line per case, floats at full precision. (The script's
# folder is on the import path when it is run as `python3 tools/gen_norm_fixtures.py`.)
from gen_nn_fixtures import to_json

SEED = 20240917
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "tests" / "fixtures" / "norm_reference.json"
GENERATOR = "tools/gen_norm_fixtures.py"
MAX_BYTES = 400_000
STEPS = 4

torch.set_default_dtype(torch.float64)


def number(v: float):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def encode(t: torch.Tensor | None) -> dict | None:
    if t is None:
        return None
    return {"shape": list(t.shape), "data": [number(v) for v in t.detach().reshape(-1).tolist()]}


def channel_input(shape: list[int], gen: torch.Generator) -> torch.Tensor:
    """Random values whose mean and spread differ per channel, so each channel's statistics matter."""
    c = shape[1]
    view = [1, c] + [1] * (len(shape) - 2)
    offset = torch.randn(c, generator=gen).reshape(view) * 2.0
    scale = (torch.rand(c, generator=gen) * 2.0 + 0.25).reshape(view)
    return torch.randn(shape, generator=gen) * scale + offset


# --------------------------------------------------------------------------- the op

OPS = [
    # (shape, training, affine, running, momentum, eps)
    ([5, 3], True, True, True, 0.1, 1e-5),
    ([5, 3], True, False, True, 0.1, 1e-5),
    ([5, 3], False, True, True, 0.1, 1e-5),
    ([5, 3], False, False, True, 0.1, 1e-5),
    ([4, 3, 6], True, True, True, 0.3, 1e-5),
    ([1, 3, 4], True, True, False, 0.1, 1e-5),
    ([2, 3, 4, 5], True, True, True, 0.1, 1e-5),
    ([2, 3, 4, 5], False, True, True, 0.1, 1e-5),
    ([2, 3, 4, 5], True, False, False, 0.1, 1e-3),
    ([2, 2, 3, 2, 3], True, True, True, 0.1, 1e-5),
    ([2, 2, 3, 2, 3], False, False, True, 0.1, 0.5),
    ([3, 4, 2], True, True, True, 1.0, 1e-5),
    ([3, 4, 2], False, True, True, 0.0, 1e-5),
]


def op_case(index: int, shape, training, affine, running, momentum, eps) -> dict:
    gen = torch.Generator().manual_seed(SEED + index)
    c = shape[1]
    x = channel_input(shape, gen)
    if index == 0:
        x[:, 1] = 0.75  # a constant channel: variance 0, so eps alone keeps σ⁻¹ finite
    weight = torch.randn(c, generator=gen) if affine else None
    bias = torch.randn(c, generator=gen) if affine else None
    running_mean = torch.randn(c, generator=gen) if running else None
    running_var = torch.rand(c, generator=gen) + 0.5 if running else None
    g = torch.randn(shape, generator=gen)

    before = (encode(running_mean), encode(running_var))
    leaves = [t.requires_grad_(True) for t in (x, weight, bias) if t is not None]
    y = F.batch_norm(x, running_mean, running_var, weight, bias, training=training, momentum=momentum, eps=eps)
    y.backward(g)
    grad = lambda t: None if t is None else t.grad
    assert all(t.grad is not None for t in leaves)
    return {
        "name": f"batch_norm {shape} training={training} affine={affine} running={running} "
                f"momentum={momentum} eps={eps}",
        "training": training, "momentum": momentum, "eps": eps,
        "x": encode(x), "weight": encode(weight), "bias": encode(bias),
        "running_mean": before[0], "running_var": before[1], "g": encode(g),
        "y": encode(y), "grad_x": encode(x.grad), "grad_weight": encode(grad(weight)),
        "grad_bias": encode(grad(bias)),
        "running_mean_after": encode(running_mean), "running_var_after": encode(running_var),
    }


# --------------------------------------------------------------------------- the layers

LAYERS = [
    # (rank, c, input shape, settings)
    (1, 3, [4, 3], {}),
    (1, 3, [4, 3], {"momentum": None}),
    (1, 3, [2, 3, 5], {"momentum": 0.3}),
    (2, 3, [2, 3, 4, 4], {}),
    (2, 3, [2, 3, 4, 4], {"momentum": None}),
    (2, 2, [3, 2, 3, 2], {"affine": False}),
    (2, 2, [3, 2, 3, 2], {"track_running_stats": False}),
    (2, 2, [3, 2, 3, 2], {"eps": 1e-2, "momentum": None, "affine": False}),
    (3, 2, [2, 2, 3, 2, 3], {}),
    (3, 2, [2, 2, 3, 2, 3], {"momentum": None}),
]
NO_GRAD_STEP = 2


def layer_case(index: int, rank: int, c: int, shape: list[int], settings: dict) -> dict:
    gen = torch.Generator().manual_seed(SEED + 1000 + index)
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[rank]
    layer = cls(c, **settings)
    full = {"eps": layer.eps, "momentum": layer.momentum, "affine": layer.affine,
            "track_running_stats": layer.track_running_stats}
    if layer.affine:
        with torch.no_grad():
            layer.weight.copy_(torch.randn(c, generator=gen))
            layer.bias.copy_(torch.randn(c, generator=gen))
    weight0, bias0 = (encode(layer.weight), encode(layer.bias)) if layer.affine else (None, None)
    layer.train()
    steps = []
    for t in range(STEPS):
        x = channel_input(shape, gen)
        g = torch.randn(shape, generator=gen)
        step = {"x": encode(x), "g": encode(g), "no_grad": t == NO_GRAD_STEP}
        if t == NO_GRAD_STEP:
            with torch.no_grad():
                y = layer(x)
            step.update(y=encode(y), grad_x=None, grad_weight=None, grad_bias=None)
        else:
            layer.zero_grad()
            x.requires_grad_(True)
            y = layer(x)
            y.backward(g)
            step.update(y=encode(y), grad_x=encode(x.grad),
                        grad_weight=encode(layer.weight.grad) if layer.affine else None,
                        grad_bias=encode(layer.bias.grad) if layer.affine else None)
        step.update(running_mean=encode(layer.running_mean), running_var=encode(layer.running_var),
                    num_batches_tracked=None if layer.num_batches_tracked is None
                    else int(layer.num_batches_tracked))
        steps.append(step)
    layer.eval()
    x_eval = channel_input(shape, gen)
    with torch.no_grad():
        y_eval = layer(x_eval)
    return {
        "name": f"{cls.__name__}({c}, {settings}) on {shape}", "rank": rank, "num_features": c,
        **full, "input_shape": shape, "weight": weight0, "bias": bias0, "steps": steps,
        "x_eval": encode(x_eval), "y_eval": encode(y_eval),
        "state_dict": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                       for k, v in layer.state_dict().items()],
    }


# --------------------------------------------------------------------------- state_dict names

def models() -> list[tuple[str, nn.Module]]:
    return [
        ("conv_bn", nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                                  nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4, affine=False),
                                  nn.BatchNorm2d(4, track_running_stats=False))),
        ("bn_first", nn.Sequential(nn.BatchNorm1d(5), nn.Linear(5, 2), nn.BatchNorm1d(2, momentum=None))),
        ("nested", nn.Sequential(nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2)), nn.Tanh(),
                                 nn.BatchNorm1d(2, affine=False))),
    ]


def state_dict_case(name: str, model: nn.Module) -> dict:
    return {"name": name,
            "state_dict": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                           for k, v in model.state_dict().items()]}


# --------------------------------------------------------------------------- NaN and infinity

NAN, INF = float("nan"), float("inf")


def nan_cases() -> list[dict]:
    # [n = 3, c = 3]: channel 0 finite, channel 1 holds a NaN, channel 2 an infinity.
    x = [[1.0, NAN, 3.0], [2.0, 5.0, INF], [0.5, 1.0, 2.0]]
    g = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    cases = []
    for training in (True, False):
        for affine in (True, False):
            for nan_running in ((False, True) if not training else (False,)):
                xt = torch.tensor(x, requires_grad=True)
                weight = torch.tensor([1.5, -0.5, 2.0], requires_grad=True) if affine else None
                bias = torch.tensor([0.1, 0.2, -0.3], requires_grad=True) if affine else None
                mean = torch.tensor([0.25, -0.5, 1.0])
                var = torch.tensor([2.0, 0.5, 1.5])
                if nan_running:
                    mean[0] = NAN  # a NaN running mean poisons its channel's output in eval mode
                    var[2] = INF
                before = (encode(mean), encode(var))
                y = F.batch_norm(xt, mean, var, weight, bias, training=training, momentum=0.1, eps=1e-5)
                y.backward(torch.tensor(g))
                cases.append({
                    "name": f"non-finite x, training={training}, affine={affine}, nan running={nan_running}",
                    "training": training, "momentum": 0.1, "eps": 1e-5,
                    "x": encode(xt), "weight": encode(weight), "bias": encode(bias),
                    "running_mean": before[0], "running_var": before[1], "g": encode(torch.tensor(g)),
                    "y": encode(y), "grad_x": encode(xt.grad),
                    "grad_weight": encode(weight.grad) if affine else None,
                    "grad_bias": encode(bias.grad) if affine else None,
                    "running_mean_after": encode(mean), "running_var_after": encode(var),
                })
    return cases


# --------------------------------------------------------------------------- output

def main() -> None:
    torch.manual_seed(SEED)
    doc = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "ops": [op_case(i, *case) for i, case in enumerate(OPS)],
        "layers": [layer_case(i, *case) for i, case in enumerate(LAYERS)],
        "state_dict": [state_dict_case(*m) for m in models()],
        "nan": nan_cases(),
    }
    names = [c["name"] for c in doc["ops"] + doc["layers"] + doc["nan"]]
    assert len(set(names)) == len(names), names

    text = to_json(doc)
    assert json.loads(text) == doc
    size = len(text.encode())
    assert size <= MAX_BYTES, f"fixture file too large: {size} bytes"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"{len(doc['ops'])} op cases, {len(doc['layers'])} layer cases, {len(doc['state_dict'])} models, "
          f"{len(doc['nan'])} non-finite cases, torch {torch.__version__}, "
          f"wrote {OUTPUT.relative_to(REPO_ROOT)} ({size} bytes)")


if __name__ == "__main__":
    main()
