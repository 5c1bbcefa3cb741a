"""Generate PyTorch reference fixtures for adjoint's max and average pooling.

Run it by hand from anywhere (it needs PyTorch; CPU is enough):

    python3 tools/gen_pool_fixtures.py

It writes ``tests/fixtures/pool_reference.json``, which is committed: the Rust
test ``tests/pool.rs`` reads it and needs neither Python nor PyTorch.
Everything is float64 and seeded, so the output is deterministic. Tensor values
are written as strings: ``repr`` of each float (parsed exactly on the Rust side),
and ``"nan"``, ``"inf"``, ``"-inf"``, which JSON numbers cannot hold.

``cases``
    ``torch.nn.functional.max_pool{1,2,3}d`` / ``avg_pool{1,2,3}d`` over a spread
    of settings: every rank, batched and unbatched, padding, stride unlike the
    kernel, dilation, ``ceil_mode`` (including a last window dropped for
    starting past the input, and a kernel longer than the input), per-axis
    settings, ``count_include_pad=False``, ``divisor_override`` (in 1-D, which
    PyTorch's ``avg_pool1d`` lacks, through ``avg_pool2d`` over a height of 1), an
    empty batch.
    Each holds the input ``x``, a random upstream gradient ``grad_y``, PyTorch's
    output ``y`` and ``grad_x = x.grad`` after ``y.backward(grad_y)``. Inputs are
    of three kinds: ``distinct`` (a shuffled ramp, values 0.25 apart: no ties),
    ``ties`` (small integers: many ties, whose gradient PyTorch sends to the
    first maximum of each window) and ``nonfinite`` (NaN, +inf and -inf placed
    in windows). The max-pool output is also computed without autograd
    (``torch.no_grad``, which takes other kernels in PyTorch) and checked equal.

``errors``
    Settings PyTorch refuses (among them ``avg_pool3d``'s own rule that every
    input size be at least the kernel's, padding or not), each checked here to raise, with PyTorch's
    message, and the parameter adjoint's error names (``x`` for a shape
    error).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from gen_nn_fixtures import to_json  # one line per case, floats at full precision

SEED = 20240917
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "tests" / "fixtures" / "pool_reference.json"
GENERATOR = "tools/gen_pool_fixtures.py"
MAX_BYTES = 400_000

torch.set_default_dtype(torch.float64)

NAN, INF = math.nan, math.inf

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def number(v: float) -> str:
    """A float as the string ``repr`` gives (shortest round-trip), so the Rust side parses it
    with ``str::parse``, which rounds correctly (serde_json's own float parsing may miss by an
    ulp, and max-pool's values and gradients are compared exactly)."""
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def encode(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": [number(v) for v in t.detach().reshape(-1).tolist()]}


def per_axis(v):
    """PyTorch's int-or-tuple argument from the fixture's list."""
    return v[0] if len(v) == 1 else tuple(v)


def settings(op: str, s: dict) -> dict:
    """The keyword arguments of the PyTorch call for a case's settings."""
    kw = {"kernel_size": per_axis(s["kernel"]), "padding": per_axis(s.get("padding", [0])),
          "ceil_mode": s.get("ceil_mode", False)}
    if s.get("stride") is not None:
        kw["stride"] = per_axis(s["stride"])
    if op == "max":
        kw["dilation"] = per_axis(s.get("dilation", [1]))
    else:
        kw["count_include_pad"] = s.get("count_include_pad", True)
        if s.get("divisor_override") is not None:
            kw["divisor_override"] = s["divisor_override"]
    return kw


def call(op: str, rank: int, x: torch.Tensor, s: dict) -> torch.Tensor:
    """PyTorch's pooling of ``x`` with settings ``s``. PyTorch's ``avg_pool1d`` has no
    ``divisor_override`` (adjoint's takes one): that case is ``avg_pool2d`` over a height of 1."""
    if op == "avg" and rank == 1 and s.get("divisor_override") is not None:
        height = {"kernel": 1, "stride": 1, "padding": 0}
        wide = {k: [height[k], v[0]] if k in height and v is not None else v for k, v in s.items()}
        return F.avg_pool2d(x.unsqueeze(-2), **settings(op, wide)).squeeze(-2)
    return (MAX if op == "max" else AVG)[rank](x, **settings(op, s))


def full_settings(s: dict) -> dict:
    return {"kernel": s["kernel"], "stride": s.get("stride"), "padding": s.get("padding", [0]),
            "dilation": s.get("dilation", [1]), "ceil_mode": s.get("ceil_mode", False),
            "count_include_pad": s.get("count_include_pad", True),
            "divisor_override": s.get("divisor_override")}


# --------------------------------------------------------------------------- inputs

def distinct(shape, gen) -> torch.Tensor:
    n = math.prod(shape)
    return (torch.randperm(n, generator=gen).to(torch.float64) * 0.25 - n / 8).reshape(shape)


def ties(shape, gen) -> torch.Tensor:
    return torch.randint(0, 3, shape, generator=gen).to(torch.float64)


def nonfinite(shape, gen) -> torch.Tensor:
    """Mostly ordinary values, with NaN, +inf and -inf at a few places, one window of
    several NaN, and a run of -inf."""
    x = ties(shape, gen)
    flat = x.reshape(-1)
    n = flat.numel()
    for k, v in enumerate([NAN, INF, -INF, NAN, NAN, INF, -INF, -INF, -INF]):
        flat[(k * 7 + 3) % n] = v
    # Two NaN next to each other (one window with two), and a run of -inf.
    flat[min(10, n - 2)] = NAN
    flat[min(11, n - 1)] = NAN
    for j in range(n // 2, min(n // 2 + 4, n)):
        flat[j] = -INF
    return x


INPUTS = {"distinct": distinct, "ties": ties, "nonfinite": nonfinite}

# --------------------------------------------------------------------------- cases

# (op, rank, x shape, settings, input kinds). Settings are lists, one value or one per axis.
CASES = [
    # rank 1
    ("max", 1, [2, 3, 9], {"kernel": [3], "stride": [1], "padding": [1]}, ["distinct", "ties"]),
    ("max", 1, [2, 2, 8], {"kernel": [2]}, ["distinct", "ties", "nonfinite"]),
    ("max", 1, [1, 2, 10], {"kernel": [3], "stride": [2], "padding": [1], "ceil_mode": True}, ["distinct", "ties"]),
    ("max", 1, [1, 1, 11], {"kernel": [4], "stride": [3], "padding": [2], "ceil_mode": True}, ["distinct"]),
    ("max", 1, [2, 2, 12], {"kernel": [3], "stride": [2], "padding": [1], "dilation": [2]}, ["distinct", "ties"]),
    ("max", 1, [1, 2, 7], {"kernel": [2], "stride": [1], "padding": [1], "dilation": [3], "ceil_mode": True},
     ["distinct", "nonfinite"]),
    ("max", 1, [1, 1, 5], {"kernel": [3], "stride": [3], "padding": [1], "ceil_mode": True}, ["distinct"]),
    ("max", 1, [1, 1, 1], {"kernel": [3], "stride": [3], "ceil_mode": True}, ["distinct"]),
    ("max", 1, [3, 9], {"kernel": [3], "stride": [2]}, ["distinct", "ties"]),
    ("max", 1, [0, 2, 6], {"kernel": [2]}, ["distinct"]),
    ("avg", 1, [2, 3, 9], {"kernel": [3], "stride": [1], "padding": [1]}, ["distinct", "nonfinite"]),
    ("avg", 1, [1, 2, 10], {"kernel": [3], "stride": [2], "padding": [1], "ceil_mode": True}, ["distinct"]),
    ("avg", 1, [1, 2, 10], {"kernel": [3], "stride": [2], "padding": [1], "ceil_mode": True,
                            "count_include_pad": False}, ["distinct"]),
    ("avg", 1, [1, 1, 6], {"kernel": [3], "stride": [3], "padding": [1], "ceil_mode": True}, ["distinct"]),
    ("avg", 1, [1, 1, 5], {"kernel": [3], "stride": [3], "padding": [1], "ceil_mode": True}, ["distinct"]),
    ("avg", 1, [1, 1, 1], {"kernel": [3], "stride": [3], "ceil_mode": True}, ["distinct"]),
    ("avg", 1, [2, 2, 8], {"kernel": [4], "stride": [3], "padding": [2], "divisor_override": 5}, ["distinct"]),
    ("avg", 1, [3, 9], {"kernel": [2], "padding": [1], "count_include_pad": False}, ["distinct"]),
    # rank 2
    ("max", 2, [2, 3, 8, 8], {"kernel": [2]}, ["distinct", "ties", "nonfinite"]),
    ("max", 2, [1, 2, 7, 9], {"kernel": [2]}, ["distinct", "ties"]),
    ("max", 2, [1, 2, 7, 9], {"kernel": [2], "ceil_mode": True}, ["distinct", "ties"]),
    ("max", 2, [2, 2, 7, 6], {"kernel": [3, 2], "stride": [2, 1], "padding": [1, 0]}, ["distinct", "ties"]),
    ("max", 2, [1, 2, 9, 8], {"kernel": [3], "stride": [1, 2], "padding": [1], "dilation": [2]},
     ["distinct", "ties", "nonfinite"]),
    ("max", 2, [1, 2, 9, 8], {"kernel": [3], "stride": [2], "padding": [1], "dilation": [2, 1], "ceil_mode": True},
     ["distinct", "ties"]),
    ("max", 2, [2, 6, 7], {"kernel": [3], "stride": [2], "padding": [1]}, ["distinct", "nonfinite"]),
    ("max", 2, [1, 1, 2, 2], {"kernel": [2], "stride": [1], "padding": [1]}, ["ties"]),
    ("avg", 2, [2, 3, 8, 8], {"kernel": [2]}, ["distinct", "nonfinite"]),
    ("avg", 2, [2, 2, 7, 6], {"kernel": [3, 2], "stride": [2, 1], "padding": [1, 0]}, ["distinct"]),
    ("avg", 2, [1, 2, 7, 8], {"kernel": [3], "stride": [2], "padding": [1], "ceil_mode": True,
                              "count_include_pad": False}, ["distinct"]),
    ("avg", 2, [1, 2, 7, 8], {"kernel": [3], "stride": [2], "padding": [1], "ceil_mode": True}, ["distinct"]),
    ("avg", 2, [1, 2, 7, 8], {"kernel": [3, 4], "stride": [2, 3], "padding": [1, 2], "divisor_override": 4},
     ["distinct"]),
    ("avg", 2, [2, 6, 7], {"kernel": [3], "stride": [2], "padding": [1]}, ["distinct"]),
    # Input smaller than the kernel, padding making up: accepted in 1-D, 2-D (not avg_pool3d).
    ("avg", 2, [1, 1, 2, 2], {"kernel": [3], "padding": [1]}, ["distinct"]),
    ("avg", 1, [1, 1, 2], {"kernel": [3], "padding": [1], "count_include_pad": False}, ["distinct"]),
    ("max", 3, [1, 1, 2, 2, 2], {"kernel": [3], "padding": [1]}, ["distinct"]),
    # rank 3
    ("max", 3, [1, 2, 4, 6, 5], {"kernel": [2]}, ["distinct", "ties", "nonfinite"]),
    ("max", 3, [1, 1, 5, 4, 5], {"kernel": [3, 2, 2], "stride": [2, 1, 2], "padding": [1, 0, 1], "ceil_mode": True},
     ["distinct", "ties"]),
    ("max", 3, [2, 1, 4, 6, 5], {"kernel": [2, 2, 3], "stride": [1], "padding": [1], "dilation": [1, 2, 1]},
     ["distinct", "ties"]),
    ("max", 3, [2, 4, 4, 4], {"kernel": [2]}, ["distinct"]),
    ("avg", 3, [1, 2, 4, 6, 5], {"kernel": [2]}, ["distinct", "nonfinite"]),
    ("avg", 3, [1, 1, 5, 4, 5], {"kernel": [3], "stride": [2], "padding": [1], "ceil_mode": True,
                                 "count_include_pad": False}, ["distinct"]),
    ("avg", 3, [1, 1, 5, 4, 5], {"kernel": [3, 2, 2], "stride": [2, 1, 2], "padding": [1, 0, 1], "ceil_mode": True},
     ["distinct"]),
    ("avg", 3, [1, 2, 4, 5, 4], {"kernel": [2, 3, 2], "stride": [1, 2, 2], "padding": [1], "divisor_override": 7},
     ["distinct"]),
    ("avg", 3, [2, 4, 4, 4], {"kernel": [2]}, ["distinct"]),
]


def value_case(index: int, op: str, rank: int, shape: list, s: dict, kind: str) -> dict:
    gen = torch.Generator().manual_seed(SEED + index)
    x = INPUTS[kind](shape, gen).requires_grad_(True)
    y = call(op, rank, x, s)
    grad_y = torch.randn(y.shape, generator=gen)
    y.backward(grad_y)
    if op == "max":
        with torch.no_grad():
            y_plain = call(op, rank, x.detach(), s)
        assert torch.equal(y_plain.isnan(), y.isnan()) and torch.equal(
            y_plain.nan_to_num(), y.detach().nan_to_num()), "no_grad kernel differs"
    name = f"{op}{rank}d_{'x'.join(map(str, shape))}_" + "_".join(
        f"{k}{v}" for k, v in sorted(s.items())) + f"_{kind}"
    return {"name": name, "op": op, "rank": rank, "kind": kind, **full_settings(s),
            "x": encode(x), "grad_y": encode(grad_y), "y": encode(y), "grad_x": encode(x.grad)}


# --------------------------------------------------------------------------- errors

def shape_of(rank: int, lead: list, v: int) -> list:
    return lead + [v] * rank


ERRORS = []
for rank in (1, 2, 3):
    x = shape_of(rank, [1, 2], 5)
    for op in ("max", "avg"):
        ERRORS += [
            (op, rank, x, {"kernel": [0], "stride": [1]}, "kernel_size"),
            (op, rank, x, {"kernel": [2], "stride": [0]}, "stride"),
            (op, rank, x, {"kernel": [3], "padding": [2]}, "padding"),
            (op, rank, x, {"kernel": [2], "padding": [2]}, "padding"),
            (op, rank, x, {"kernel": [1], "padding": [1]}, "padding"),
            (op, rank, x, {"kernel": [6]}, "x"),
            (op, rank, shape_of(rank, [1, 2], 1), {"kernel": [3], "stride": [2], "ceil_mode": True}, "x"),
            (op, rank, shape_of(rank, [1, 0], 5), {"kernel": [2]}, "x"),
            (op, rank, shape_of(rank, [0], 5), {"kernel": [2]}, "x"),
            (op, rank, [1, 2] + [5] * (rank - 1) + [0], {"kernel": [2]}, "x"),
            (op, rank, [5] * rank, {"kernel": [2]}, "x"),
            (op, rank, [1, 1, 1] + [5] * rank, {"kernel": [2]}, "x"),
            (op, rank, x, {"kernel": [2] * (rank + 1)}, "kernel_size"),
        ]
        if rank > 1:
            ERRORS += [
                (op, rank, x, {"kernel": [3] * rank, "padding": [1] * (rank - 1) + [2]}, "padding"),
                (op, rank, x, {"kernel": [2] * (rank - 1) + [0], "stride": [1]}, "kernel_size"),
            ]
    ERRORS += [
        ("max", rank, x, {"kernel": [2], "dilation": [0]}, "dilation"),
        # p ≤ ⌊k_e/2⌋ = 2 but p > ⌊k/2⌋ = 1: PyTorch's second check refuses it.
        ("max", rank, x, {"kernel": [3], "padding": [2], "dilation": [2]}, "padding"),
        ("max", rank, shape_of(rank, [1, 2], 4), {"kernel": [3], "dilation": [2]}, "x"),
        ("avg", rank, x, {"kernel": [2], "divisor_override": 0}, "divisor_override"),
    ]
# avg_pool3d alone wants every input size at least the kernel's, whatever the padding.
ERRORS += [
    ("avg", 3, [1, 1, 2, 2, 2], {"kernel": [3], "padding": [1]}, "x"),
    ("avg", 3, [1, 1, 2, 5, 5], {"kernel": [3], "stride": [1], "padding": [1]}, "x"),
]


def error_case(op: str, rank: int, shape: list, s: dict, param: str) -> dict:
    x = torch.zeros(shape)
    try:
        call(op, rank, x, s)
    except (RuntimeError, IndexError, TypeError, ValueError) as e:
        message = str(e).split("\n")[0]
    else:
        raise AssertionError(f"PyTorch accepted {op} rank {rank} {shape} {s}")
    name = f"{op}{rank}d_{'x'.join(map(str, shape))}_" + "_".join(f"{k}{v}" for k, v in sorted(s.items()))
    return {"name": name, "op": op, "rank": rank, "x_shape": shape, **full_settings(s), "param": param,
            "torch_error": message}


# --------------------------------------------------------------------------- output

def main() -> None:
    torch.manual_seed(SEED)
    cases = []
    for op, rank, shape, s, kinds in CASES:
        for kind in kinds:
            cases.append(value_case(len(cases), op, rank, shape, s, kind))
    errors = [error_case(*e) for e in ERRORS]
    doc = {"generator": GENERATOR, "torch_version": torch.__version__, "cases": cases, "errors": errors}
    names = [c["name"] for c in cases] + [e["name"] for e in errors]
    assert len(set(names)) == len(names), [n for n in names if names.count(n) > 1]

    text = to_json(doc)
    assert json.loads(text) == doc
    size = len(text.encode())
    assert size <= MAX_BYTES, f"fixture file too large: {size} bytes"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)

    for case in cases:
        print(f"{case['name']:<100} -> {case['y']['shape']}")
    for e in errors:
        print(f"{e['name']:<70} refused: {e['torch_error'][:90]}")
    print(f"{len(cases)} cases, {len(errors)} refusals, torch {torch.__version__}, "
          f"wrote {OUTPUT.relative_to(REPO_ROOT)} ({size} bytes)")


if __name__ == "__main__":
    main()
