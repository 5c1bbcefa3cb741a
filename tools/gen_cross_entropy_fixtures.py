"""Generate PyTorch reference fixtures for adjoint's ``cross_entropy`` (class-index targets).

Run it by hand from anywhere (it needs PyTorch; CPU is enough):

    python3 tools/gen_cross_entropy_fixtures.py

It writes ``tests/fixtures/cross_entropy_reference.json``, which is committed: the Rust tests
(``tests/cross_entropy.rs``) read the JSON and need neither Python nor PyTorch. Everything is
float64 and seeded, so the output is deterministic. Non-finite numbers are written as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (JSON has no literal for them). The file
holds:

``values``
    ``F.cross_entropy(x, target, weight=, ignore_index=, reduction=, label_smoothing=)`` for
    logits ``[n, c]``, ``[n, c, l]``, ``[n, c, h, w]``, ``[n, c, d, h, w]`` and unbatched
    ``[c]`` (0-d target), each reduction, with and
    without class weights, ignored targets and label smoothing, plus the settings PyTorch
    accepts although they look wrong (negative or out-of-range ``label_smoothing``, negative
    weights, ``ignore_index`` at the ends of int64 or inside ``0..c``). For each: the loss,
    the gradient of ``<grad_out, loss>`` with respect to the logits for a random ``grad_out``
    (a scalar for ``mean`` / ``sum``), and the second derivative
    ``d/dx <v, d<grad_out, loss>/dx>`` for a random ``v`` (``create_graph=True``).

``non_finite``
    Logits with NaN and ±inf entries, ignored elements among them, zero total weight, all
    targets ignored and empty batches: the loss and the logits' gradient, as PyTorch gives
    them.

``errors``
    Calls PyTorch refuses, each checked here to raise (in the forward pass, or for the one
    case PyTorch only refuses in its backward pass, there), with PyTorch's message, and the
    error adjoint must return (kind, parameter or input, strings its message must contain).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from gen_nn_fixtures import to_json  # one line per case, floats at full precision

warnings.filterwarnings("ignore")  # PyTorch warns about NumPy being absent

SEED = 20240917
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "tests" / "fixtures" / "cross_entropy_reference.json"
GENERATOR = "tools/gen_cross_entropy_fixtures.py"
MAX_BYTES = 400_000
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)

torch.set_default_dtype(torch.float64)


def number(v: float):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def encode(t: torch.Tensor) -> dict:
    data = t.detach().reshape(-1).tolist()
    if t.is_floating_point():
        data = [number(v) for v in data]
    return {"shape": list(t.shape), "data": data}


def options_of(weight, ignore_index, reduction, label_smoothing) -> dict:
    return {
        "weight": None if weight is None else [number(v) for v in weight.tolist()],
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": number(label_smoothing),
    }


def call(x, target, opts: dict):
    weight = opts["weight"]
    weight = None if weight is None else torch.tensor([float(v) for v in weight])
    return F.cross_entropy(x, target, weight=weight, ignore_index=opts["ignore_index"],
                           reduction=opts["reduction"], label_smoothing=float(opts["label_smoothing"]))


# --------------------------------------------------------------------------- values

SHAPES = {
    "nc": [5, 4],
    "ncl": [3, 4, 5],
    "nchw": [2, 3, 3, 4],
    "ncdhw": [2, 3, 2, 2, 3],
    "unbatched": [5],
}

REDUCTIONS = ["mean", "sum", "none"]


def target_shape(shape: list[int]) -> list[int]:
    if len(shape) == 1:
        return []
    return [shape[0]] + shape[2:]


def random_targets(gen, shape, classes, ignore_index=None, ignore_share=0.0):
    t = torch.randint(0, classes, shape, generator=gen)
    if ignore_index is not None and ignore_share > 0:
        mask = torch.rand(shape, generator=gen) < ignore_share
        # At least one element ignored, and at least one counted, so each case shows both.
        flat = mask.reshape(-1)
        if flat.numel() > 1:
            flat[0], flat[-1] = True, False
        t = torch.where(mask, torch.full_like(t, ignore_index), t)
    return t


def value_case(index: int, name: str, shape, reduction: str, *, weight=False, weight_values=None,
               ignore_index=-100, ignore_share=0.0, label_smoothing=0.0,
               targets=None) -> dict:
    gen = torch.Generator().manual_seed(SEED + index)
    classes = shape[1] if len(shape) > 1 else shape[0]
    x = torch.randn(shape, generator=gen) * 1.5
    t_shape = target_shape(shape)
    if targets is not None:
        target = torch.tensor(targets, dtype=torch.long).reshape(t_shape)
    else:
        target = random_targets(gen, t_shape, classes, ignore_index, ignore_share)
    w = None
    if weight_values is not None:
        w = torch.tensor(weight_values)
    elif weight:
        w = torch.rand(classes, generator=gen) * 1.8 + 0.2
    opts = options_of(w, ignore_index, reduction, label_smoothing)
    x = x.requires_grad_(True)
    loss = call(x, target, opts)
    grad_out = torch.randn(loss.shape, generator=gen)
    (grad_x,) = torch.autograd.grad(loss, x, grad_out, create_graph=True)
    v = torch.randn(shape, generator=gen)
    (hvp,) = torch.autograd.grad((grad_x * v).sum(), x)
    return {"name": f"{name}_{reduction}_{index}", "options": opts, "logits": encode(x),
            "target": encode(target), "loss": encode(loss), "grad_out": encode(grad_out),
            "grad_logits": encode(grad_x), "v": encode(v), "hvp": encode(hvp)}


def value_cases() -> list[dict]:
    specs = []
    for name, shape in SHAPES.items():
        for reduction in REDUCTIONS:
            specs.append((name, shape, reduction, {}))
            specs.append((name, shape, reduction, {"weight": True, "ignore_share": 0.3}))
            specs.append((name, shape, reduction,
                          {"weight": True, "ignore_share": 0.3, "label_smoothing": 0.15}))
    for reduction in REDUCTIONS:
        specs.append(("unbatched_ignored", [5], reduction, {"weight": True, "targets": [-100]}))
    nc = [5, 4]
    for reduction in ["mean", "none"]:
        specs += [
            ("nc_ignore_only", nc, reduction, {"ignore_share": 0.4}),
            ("nc_weight_only", nc, reduction, {"weight": True}),
            ("nc_smoothing_only", nc, reduction, {"label_smoothing": 0.3}),
            ("nc_ignore_255", nc, reduction, {"weight": True, "ignore_index": 255, "ignore_share": 0.4}),
            ("nc_ignore_in_range", nc, reduction, {"ignore_index": 1, "targets": [1, 0, 1, 3, 2]}),
            ("nc_smoothing_1", nc, reduction, {"weight": True, "label_smoothing": 1.0, "ignore_share": 0.3}),
            # PyTorch smooths only for label_smoothing > 0, and checks the upper bound only then.
            ("nc_smoothing_negative", nc, reduction, {"label_smoothing": -0.5}),
            ("nc_smoothing_nan", nc, reduction, {"label_smoothing": float("nan")}),
            ("nc_negative_weight", nc, reduction,
             {"weight_values": [1.5, -0.5, 2.0, -1.0], "label_smoothing": 0.2}),
            ("nc_ignore_i64_max", nc, reduction, {"ignore_index": I64_MAX, "targets": [0, I64_MAX, 3, 2, I64_MAX]}),
            ("nc_ignore_i64_min", nc, reduction, {"ignore_index": I64_MIN, "targets": [I64_MIN, 1, 3, 2, 0]}),
        ]
    specs.append(("segmentation", [2, 6, 5, 5], "mean", {"weight": True, "ignore_index": 255, "ignore_share": 0.2}))
    return [value_case(i, name, shape, reduction, **kw) for i, (name, shape, reduction, kw) in enumerate(specs)]


# --------------------------------------------------------------------------- non-finite

NAN, INF = float("nan"), float("inf")

# (name, logits, target, options without reduction)
NON_FINITE = [
    ("nan_logit_counted", [[0.1, NAN, 0.3], [0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [0, 1, 2], {}),
    ("nan_logit_ignored", [[0.1, NAN, 0.3], [0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [-100, 1, 2], {}),
    ("nan_logit_ignored_smoothing", [[0.1, NAN, 0.3], [0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [-100, 1, 2],
     {"label_smoothing": 0.2, "weight": [1.0, 2.0, 0.5]}),
    ("infinite_logits", [[0.1, INF, 0.3], [0.2, 0.1, -0.5], [-INF, 2.0, 3.0], [-INF, -INF, -INF]],
     [0, 1, 0, 1], {}),
    ("infinite_logits_off_target", [[0.1, INF, 0.3], [0.2, 0.1, -0.5], [-INF, 2.0, 3.0], [-INF, -INF, -INF]],
     [1, 1, 2, -100], {}),
    ("infinite_logits_smoothing", [[0.1, INF, 0.3], [0.2, 0.1, -0.5], [-INF, 2.0, 3.0], [-INF, -INF, -INF]],
     [1, 1, 2, -100], {"label_smoothing": 0.2}),
    ("minus_inf_zero_weight_smoothing", [[-INF, 2.0, 3.0]], [1], {"label_smoothing": 0.2, "weight": [0.0, 1.0, 1.0]}),
    ("minus_inf_zero_weight_target", [[-INF, 2.0, 3.0]], [0], {"weight": [0.0, 1.0, 1.0]}),
    ("zero_total_weight", [[0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [0, 0], {"weight": [0.0, 1.0, 1.0]}),
    ("zero_total_weight_smoothing", [[0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [0, 0],
     {"weight": [0.0, 1.0, 1.0], "label_smoothing": 0.1}),
    ("all_ignored", [[0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [-100, -100], {}),
    ("all_ignored_smoothing", [[0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [-100, -100], {"label_smoothing": 0.1}),
    ("all_ignored_with_nan", [[0.1, NAN, 0.3], [0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [-100, -100, -100], {}),
    ("nan_weight", [[0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [0, 1], {"weight": [1.0, NAN, 1.0]}),
    ("nan_weight_unused", [[0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [0, 2], {"weight": [1.0, NAN, 1.0]}),
    ("infinite_weight", [[0.2, 0.1, -0.5], [1.0, 2.0, 3.0]], [0, 1], {"weight": [1.0, INF, 1.0]}),
    ("nan_unbatched_ignored", [NAN, 1.0, 2.0], -100, {}),
    ("nan_pixel_ignored", [[[[0.5, NAN]], [[1.0, 0.0]], [[-1.0, 2.0]]]], [[[2, 255]]], {"ignore_index": 255}),
    ("empty_batch", torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), {}),
    ("empty_spatial", torch.zeros(2, 3, 0, 2), torch.zeros(2, 0, 2, dtype=torch.long), {}),
    ("no_classes_all_ignored", torch.zeros(2, 0), [-100, -100], {}),
]


def non_finite_cases() -> list[dict]:
    gen = torch.Generator().manual_seed(SEED + 1000)
    out = []
    for name, logits, target, kw in NON_FINITE:
        for reduction in REDUCTIONS:
            x = torch.as_tensor(logits, dtype=torch.float64).clone().requires_grad_(True)
            target_t = torch.as_tensor(target, dtype=torch.long)
            w = kw.get("weight")
            opts = options_of(None if w is None else torch.tensor(w), kw.get("ignore_index", -100),
                              reduction, kw.get("label_smoothing", 0.0))
            loss = call(x, target_t, opts)
            grad_out = torch.randn(loss.shape, generator=gen)
            (grad_x,) = torch.autograd.grad(loss, x, grad_out)
            out.append({"name": f"{name}_{reduction}", "options": opts, "logits": encode(x),
                        "target": encode(target_t), "loss": encode(loss), "grad_out": encode(grad_out),
                        "grad_logits": encode(grad_x)})
    return out


# --------------------------------------------------------------------------- errors

# (name, logits shape, target, options, expected adjoint error: kind, name, needles)
ERRORS = [
    ("target_above_classes", [3, 4], [0, 4, 1], {}, ("invalid", "target", ["Target 4", "out of bounds", "0..4", "[1]"])),
    ("target_negative", [3, 4], [0, -1, 1], {}, ("invalid", "target", ["Target -1", "out of bounds", "-100"])),
    ("target_i64_min", [3, 4], [0, I64_MIN, 1], {}, ("invalid", "target", [f"Target {I64_MIN}"])),
    ("target_i64_max", [3, 4], [0, 1, I64_MAX], {}, ("invalid", "target", [f"Target {I64_MAX}"])),
    ("target_default_ignore_not_ignored", [3, 4], [0, -100, 1], {"ignore_index": 255},
     ("invalid", "target", ["Target -100", "ignore_index = 255"])),
    ("target_out_of_bounds_spatial", [2, 3, 2, 2], torch.full((2, 2, 2), 3).tolist(), {},
     ("invalid", "target", ["Target 3", "0..3"])),
    ("target_out_of_bounds_unbatched", [4], 4, {}, ("invalid", "target", ["Target 4"])),
    ("target_out_of_bounds_none", [3, 4], [0, 4, 1], {"reduction": "none"}, ("invalid", "target", ["Target 4"])),
    ("no_classes", [2, 0], [0, 0], {}, ("invalid", "target", ["Target 0", "0..0"])),
    ("batch_mismatch", [3, 4], [0, 1], {}, ("mismatch", None, ["[3, 4]", "[2]", "[3]"])),
    ("target_2d_for_nc", [3, 4], [[0], [1], [2]], {}, ("mismatch", None, ["[3, 1]", "[3]"])),
    ("spatial_mismatch", [2, 3, 2, 2], torch.zeros(2, 2, 3, dtype=torch.long).tolist(), {},
     ("mismatch", None, ["[2, 2, 3]", "[2, 2, 2]"])),
    ("target_rank_spatial", [2, 3, 2, 2], torch.zeros(2, 4, dtype=torch.long).tolist(), {},
     ("mismatch", None, ["[2, 4]", "[2, 2, 2]"])),
    ("spatial_mismatch_1d", [2, 3, 4], torch.zeros(2, 5, dtype=torch.long).tolist(), {},
     ("mismatch", None, ["[2, 5]", "[2, 4]"])),
    ("spatial_mismatch_3d", [2, 3, 2, 2, 2], torch.zeros(2, 2, 2, 3, dtype=torch.long).tolist(), {},
     ("mismatch", None, ["[2, 2, 2, 3]"])),
    ("target_of_logits_shape", [3, 4], torch.zeros(3, 4, dtype=torch.long).tolist(), {},
     ("mismatch", None, ["probabilities"])),
    ("unbatched_target_of_logits_shape", [1], [0], {}, ("mismatch", None, ["probabilities"])),
    ("unbatched_target_too_long", [4], [2, 1, 0], {}, ("mismatch", None, ["[3]", "0-d"])),
    # PyTorch's forward takes this target, its backward refuses it.
    ("unbatched_target_1", [4], [2], {}, ("mismatch", None, ["[4]", "[1]", "0-d"])),
    ("unbatched_target_empty", [4], torch.zeros(0, dtype=torch.long).tolist(), {}, ("mismatch", None, ["[0]"])),
    ("unbatched_target_2d", [4], [[1]], {}, ("mismatch", None, ["[1, 1]"])),
    ("unbatched_target_1_with_smoothing", [4], [2], {"label_smoothing": 0.1},
     ("mismatch", None, ["[1]", "0-d"])),
    ("scalar_logits", [], [0], {}, ("bad_shape", "logits", ["[]", "class axis"])),
    ("weight_too_short", [3, 4], [0, 1, 2], {"weight": [1.0, 1.0, 1.0]}, ("bad_shape", "weight", ["[3]", "4 classes"])),
    ("weight_too_long_spatial", [2, 3, 2, 2], torch.zeros(2, 2, 2, dtype=torch.long).tolist(),
     {"weight": [1.0, 1.0, 1.0, 1.0]}, ("bad_shape", "weight", ["[4]", "3 classes"])),
    ("label_smoothing_above_1", [3, 4], [0, 1, 2], {"label_smoothing": 1.1},
     ("invalid", "label_smoothing", ["1.1", "between 0.0 and 1.0"])),
    ("label_smoothing_infinite", [3, 4], [0, 1, 2], {"label_smoothing": INF},
     ("invalid", "label_smoothing", ["inf"])),
]


def error_cases() -> list[dict]:
    out = []
    for name, shape, target, kw, (kind, param, needles) in ERRORS:
        x = torch.zeros(shape, requires_grad=True)
        target_t = torch.as_tensor(target, dtype=torch.long)
        w = kw.get("weight")
        opts = options_of(None if w is None else torch.tensor(w), kw.get("ignore_index", -100),
                          kw.get("reduction", "mean"), kw.get("label_smoothing", 0.0))
        refused_in = "forward"
        try:
            loss = call(x, target_t, opts)
            refused_in = "backward"
            loss.sum().backward()
        except Exception as e:  # noqa: BLE001 - any refusal is what we record
            message = f"{type(e).__name__}: {e}".splitlines()[0]
        else:
            raise AssertionError(f"PyTorch accepted the error case {name}")
        out.append({"name": name, "logits_shape": shape, "target": encode(target_t), "options": opts,
                    "torch_error": message, "refused_in": refused_in, "kind": kind, "param": param, "needles": needles})
    return out


# --------------------------------------------------------------------------- output

def main() -> None:
    torch.manual_seed(SEED)
    doc = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "values": value_cases(),
        "non_finite": non_finite_cases(),
        "errors": error_cases(),
    }
    names = [c["name"] for key in ("values", "non_finite", "errors") for c in doc[key]]
    assert len(set(names)) == len(names), names

    text = to_json(doc)
    size = len(text.encode())
    assert size <= MAX_BYTES, f"fixture file too large: {size} bytes"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)

    for case in doc["errors"]:
        print(f"{case['name']:<40} {case['refused_in']:<8} {case['torch_error']}")
    print(f"{len(doc['values'])} value cases, {len(doc['non_finite'])} non-finite cases, "
          f"{len(doc['errors'])} error cases, torch {torch.__version__}, "
          f"wrote {OUTPUT.relative_to(REPO_ROOT)} ({size} bytes)")


if __name__ == "__main__":
    main()
