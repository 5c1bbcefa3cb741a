"""Generate PyTorch reference fixtures for adjoint's layers and optimizers.

Run it by hand from anywhere (it needs PyTorch; CPU is enough):

    python3 tools/gen_nn_fixtures.py

It writes ``tests/fixtures/nn_reference.json``, which is committed: the Rust
tests (``tests/nn.rs``, ``tests/optim.rs``) read the JSON and need neither
Python nor PyTorch. Everything is float64 and seeded, so the output is
deterministic. The file holds:

``optimizers``
    Trajectories of ``torch.optim.SGD``, ``Adam`` and ``AdamW`` (single-tensor
    implementation, ``foreach=False``) for several settings. Each optimizer owns
    two parameters: ``weight`` ``[3, 2]`` and ``bias`` ``[3]`` (the shapes of a
    ``Linear(2, 3)``). For 5 steps each is given a random gradient (set as
    ``p.grad`` by hand) and ``opt.step()`` is called, except that ``weight`` gets
    no gradient (``p.grad = None``) at step index 1 and ``bias`` none at step
    index 3: PyTorch skips a parameter without a gradient, so its state
    (momentum buffer, Adam step count) falls behind the other's. The value of
    every parameter after every step is recorded.

``layers``
    Conv1d/2d/3d, ConvTranspose1d/2d/3d and Linear with a spread of settings:
    input, output, weight and bias shapes, parameter count, and PyTorch's
    initialisation ``fan_in`` (from ``nn.init._calculate_fan_in_and_fan_out``)
    with the bound ``1/sqrt(fan_in)`` that ``reset_parameters`` uses.

``autoencoder``
    The ``nn.Sequential`` in the docs of ``adjoint::train::conv_autoencoder``
    (latent 64): its ``state_dict`` names and shapes in order, parameter count
    and output shape for an input ``[2, 1, 28, 28]``.

``forward``
    One small layer of each kind with random weights and bias: input, weight,
    bias and PyTorch's output.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

SEED = 20240611
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "tests" / "fixtures" / "nn_reference.json"
GENERATOR = "tools/gen_nn_fixtures.py"
MAX_BYTES = 300_000
STEPS = 5
SKIP_WEIGHT_AT = 1
SKIP_BIAS_AT = 3

torch.set_default_dtype(torch.float64)


def encode(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


# --------------------------------------------------------------------------- optimizers

SGD_DEFAULTS = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}
ADAM_DEFAULTS = {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
ADAMW_DEFAULTS = {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01}

OPTIMIZERS = [
    ("sgd_plain", "sgd", 0.1, {}),
    ("sgd_momentum", "sgd", 0.1, {"momentum": 0.9}),
    ("sgd_momentum_dampening", "sgd", 0.1, {"momentum": 0.9, "dampening": 0.1}),
    ("sgd_nesterov", "sgd", 0.1, {"momentum": 0.9, "nesterov": True}),
    ("sgd_weight_decay_momentum", "sgd", 0.1, {"momentum": 0.9, "weight_decay": 0.01}),
    ("adam_default", "adam", 0.01, {}),
    ("adam_weight_decay", "adam", 0.01, {"weight_decay": 0.1}),
    ("adam_betas_eps", "adam", 0.01, {"betas": [0.8, 0.99], "eps": 1e-6}),
    ("adamw_default", "adamw", 0.01, {}),
    ("adamw_weight_decay", "adamw", 0.01, {"weight_decay": 0.1}),
]


def optimizer_case(index: int, name: str, kind: str, lr: float, settings: dict) -> dict:
    gen = torch.Generator().manual_seed(SEED + index)
    weight0 = torch.randn(3, 2, generator=gen)
    bias0 = torch.randn(3, generator=gen)
    weight_grads = [None if t == SKIP_WEIGHT_AT else torch.randn(3, 2, generator=gen) for t in range(STEPS)]
    bias_grads = [None if t == SKIP_BIAS_AT else torch.randn(3, generator=gen) for t in range(STEPS)]

    weight = weight0.clone().requires_grad_(True)
    bias = bias0.clone().requires_grad_(True)
    if kind == "sgd":
        full = {**SGD_DEFAULTS, **settings}
        opt = torch.optim.SGD([weight, bias], lr=lr, foreach=False, **full)
    else:
        full = {**(ADAM_DEFAULTS if kind == "adam" else ADAMW_DEFAULTS), **settings}
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls([weight, bias], lr=lr, betas=tuple(full["betas"]), eps=full["eps"],
                  weight_decay=full["weight_decay"], foreach=False)

    weight_traj, bias_traj = [], []
    for t in range(STEPS):
        weight.grad = None if weight_grads[t] is None else weight_grads[t].clone()
        bias.grad = None if bias_grads[t] is None else bias_grads[t].clone()
        opt.step()
        weight_traj.append(encode(weight))
        bias_traj.append(encode(bias))

    return {
        "name": name,
        "kind": kind,
        "lr": lr,
        **{k: v for k, v in full.items()},
        "weight0": encode(weight0),
        "bias0": encode(bias0),
        "weight_grads": [None if g is None else encode(g) for g in weight_grads],
        "bias_grads": [None if g is None else encode(g) for g in bias_grads],
        "weight_trajectory": weight_traj,
        "bias_trajectory": bias_traj,
    }


# --------------------------------------------------------------------------- layer table

def ints(v, rank: int) -> list[int]:
    return list(v) if isinstance(v, (tuple, list)) else [v] * rank


def conv(rank, c_in, c_out, kernel, input_shape, *, stride=1, padding=0, dilation=1, groups=1, bias=True):
    return {"kind": "conv", "rank": rank, "c_in": c_in, "c_out": c_out, "kernel": ints(kernel, rank),
            "stride": ints(stride, rank),
            "padding": padding if isinstance(padding, str) else ints(padding, rank),
            "dilation": ints(dilation, rank), "groups": groups, "output_padding": [0] * rank,
            "has_bias": bias, "input_shape": input_shape}


def conv_t(rank, c_in, c_out, kernel, input_shape, *, stride=1, padding=0, output_padding=0, dilation=1,
           groups=1, bias=True):
    return {"kind": "conv_transpose", "rank": rank, "c_in": c_in, "c_out": c_out, "kernel": ints(kernel, rank),
            "stride": ints(stride, rank), "padding": ints(padding, rank), "dilation": ints(dilation, rank),
            "groups": groups, "output_padding": ints(output_padding, rank), "has_bias": bias,
            "input_shape": input_shape}


def linear(c_in, c_out, input_shape, *, bias=True):
    return {"kind": "linear", "rank": 0, "c_in": c_in, "c_out": c_out, "kernel": [], "stride": [], "padding": [],
            "dilation": [], "groups": 1, "output_padding": [], "has_bias": bias, "input_shape": input_shape}


LAYERS = [
    conv(1, 3, 6, 3, [2, 3, 10]),
    conv(1, 4, 8, 5, [1, 4, 17], stride=2, padding=2, groups=2),
    conv(1, 4, 4, 3, [3, 4, 12], dilation=2, groups=4, bias=False),
    conv(2, 3, 8, 3, [2, 3, 9, 9], stride=2, padding=1),
    conv(2, 4, 6, (3, 5), [1, 4, 11, 13], stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
    conv(2, 2, 4, 3, [2, 2, 8, 7], padding="same", dilation=2),
    conv(2, 3, 5, (2, 4), [1, 3, 6, 9], padding="valid", stride=(1, 3)),
    conv(2, 16, 32, 3, [1, 16, 28, 28]),
    conv(2, 3, 4, 3, [3, 6, 6], padding=1),  # unbatched input [c, h, w]
    conv(3, 2, 4, 3, [1, 2, 7, 8, 9], stride=2, padding=1),
    conv(3, 4, 8, (1, 3, 3), [2, 4, 3, 6, 5], padding=(0, 1, 1), groups=4, bias=False),
    conv_t(1, 4, 2, 3, [2, 4, 7], stride=2, padding=1, output_padding=1),
    conv_t(1, 4, 6, 4, [1, 4, 5], stride=3, dilation=2, groups=2, output_padding=2),
    conv_t(2, 4, 2, 3, [2, 4, 5, 5], stride=2, padding=1, output_padding=1),
    conv_t(2, 6, 4, (3, 2), [1, 6, 4, 5], stride=(2, 3), padding=(1, 0), output_padding=(1, 2),
           dilation=(1, 2), groups=2),
    conv_t(2, 4, 8, 3, [1, 4, 6, 6], groups=4, bias=False),
    conv_t(2, 64, 4, 3, [1, 64, 3, 3]),
    conv_t(1, 2, 3, 3, [2, 5], stride=2),  # unbatched input [c, l]
    conv_t(3, 2, 3, 3, [1, 2, 3, 4, 5], stride=2, padding=1, output_padding=1),
    conv_t(3, 4, 4, (2, 3, 1), [1, 4, 3, 3, 3], stride=(1, 2, 2), dilation=(2, 1, 1), groups=2),
    linear(5, 3, [4, 5]),
    linear(7, 4, [2, 3, 7], bias=False),
    linear(6, 2, [6]),
    linear(100, 50, [1, 100]),
]


def build(spec: dict) -> nn.Module:
    kind, rank = spec["kind"], spec["rank"]
    if kind == "linear":
        return nn.Linear(spec["c_in"], spec["c_out"], bias=spec["has_bias"])
    common = dict(stride=tuple(spec["stride"]), dilation=tuple(spec["dilation"]), groups=spec["groups"],
                  bias=spec["has_bias"])
    padding = spec["padding"] if isinstance(spec["padding"], str) else tuple(spec["padding"])
    if kind == "conv":
        cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[rank]
        return cls(spec["c_in"], spec["c_out"], tuple(spec["kernel"]), padding=padding, **common)
    cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[rank]
    return cls(spec["c_in"], spec["c_out"], tuple(spec["kernel"]), padding=padding,
               output_padding=tuple(spec["output_padding"]), **common)


def name_of(spec: dict) -> str:
    if spec["kind"] == "linear":
        return f"Linear({spec['c_in']}, {spec['c_out']}, bias={spec['has_bias']}) on {spec['input_shape']}"
    cls = {"conv": "Conv", "conv_transpose": "ConvTranspose"}[spec["kind"]] + f"{spec['rank']}d"
    extras = [f"{k}={spec[k]}" for k in ("stride", "padding", "dilation", "output_padding")
              if spec[k] and spec[k] != [1 if k in ("stride", "dilation") else 0] * spec["rank"]]
    if spec["groups"] != 1:
        extras.append(f"groups={spec['groups']}")
    if not spec["has_bias"]:
        extras.append("bias=False")
    args = ", ".join([str(spec["c_in"]), str(spec["c_out"]), str(spec["kernel"]), *extras])
    return f"{cls}({args}) on {spec['input_shape']}"


def layer_case(spec: dict) -> dict:
    layer = build(spec)
    y = layer(torch.zeros(spec["input_shape"]))
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
    return {
        "name": name_of(spec),
        **spec,
        "output_shape": list(y.shape),
        "weight_shape": list(layer.weight.shape),
        "bias_shape": None if layer.bias is None else list(layer.bias.shape),
        "parameter_count": sum(p.numel() for p in layer.parameters()),
        "fan_in": fan_in,
        "init_bound": 1.0 / math.sqrt(fan_in),
    }


# --------------------------------------------------------------------------- autoencoder

def conv_autoencoder(latent: int = 64) -> nn.Sequential:
    """The model documented at adjoint::train::conv_autoencoder."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, latent, 7),
        nn.ConvTranspose2d(latent, 32, 7), nn.ReLU(),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())


def autoencoder_case() -> dict:
    model = conv_autoencoder(64)
    y = model(torch.rand(2, 1, 28, 28))
    return {
        "latent": 64,
        "layers": len(model),
        "state_dict": [{"name": k, "shape": list(v.shape)} for k, v in model.state_dict().items()],
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "input_shape": [2, 1, 28, 28],
        "output_shape": list(y.shape),
    }


# --------------------------------------------------------------------------- forward values

FORWARD = [
    linear(4, 3, [2, 3, 4]),
    conv(1, 2, 4, 3, [2, 2, 9], stride=2, padding=1, groups=2),
    conv(2, 2, 3, 3, [2, 2, 5, 6], stride=2, padding=1),
    conv(3, 2, 2, 2, [1, 2, 3, 4, 3], padding=1, dilation=(1, 2, 1)),
    conv_t(1, 4, 2, 3, [2, 4, 5], stride=2, padding=1, output_padding=1, groups=2),
    conv_t(2, 3, 2, 3, [2, 3, 3, 4], stride=2, padding=1, output_padding=1),
    conv_t(3, 2, 2, (2, 3, 2), [1, 2, 2, 3, 2], stride=(2, 1, 2), dilation=(1, 2, 1), output_padding=(1, 0, 1)),
]


def forward_case(index: int, spec: dict) -> dict:
    torch.manual_seed(SEED + 1000 + index)
    layer = build(spec)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape))
        layer.bias.copy_(torch.randn(layer.bias.shape))
    x = torch.randn(spec["input_shape"])
    y = layer(x)
    return {"name": name_of(spec), **spec, "x": encode(x), "weight": encode(layer.weight),
            "bias": encode(layer.bias), "y": encode(y)}


# --------------------------------------------------------------------------- output

def to_json(doc: dict) -> str:
    """One line per case, floats at full precision (repr round-trips)."""
    def compact(value) -> str:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)

    blocks = []
    for key, value in doc.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            body = ",\n".join(f"    {compact(item)}" for item in value)
            blocks.append(f"  {json.dumps(key)}: [\n{body}\n  ]")
        else:
            blocks.append(f"  {json.dumps(key)}: {compact(value)}")
    return "{\n" + ",\n".join(blocks) + "\n}\n"


def main() -> None:
    torch.manual_seed(SEED)
    doc = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "optimizers": [optimizer_case(i, *case) for i, case in enumerate(OPTIMIZERS)],
        "layers": [layer_case(spec) for spec in LAYERS],
        "autoencoder": autoencoder_case(),
        "forward": [forward_case(i, spec) for i, spec in enumerate(FORWARD)],
    }
    assert doc["autoencoder"]["parameter_count"] == 210_369, doc["autoencoder"]["parameter_count"]
    names = [c["name"] for c in doc["layers"]] + [c["name"] for c in doc["forward"]]
    assert len(set(names)) == len(names), names

    text = to_json(doc)
    assert json.loads(text) == doc
    size = len(text.encode())
    assert size <= MAX_BYTES, f"fixture file too large: {size} bytes"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)

    for case in doc["layers"]:
        print(f"{case['name']:<90} -> {case['output_shape']}, {case['parameter_count']} parameters")
    print(f"{len(doc['optimizers'])} optimizer trajectories, {len(doc['layers'])} layers, "
          f"{len(doc['forward'])} forward cases, torch {torch.__version__}, "
          f"wrote {OUTPUT.relative_to(REPO_ROOT)} ({size} bytes)")


if __name__ == "__main__":
    main()
