"""Generate PyTorch reference fixtures for adjoint's upsampling ops (``adjoint::ops::upsample``).

Run it by hand from anywhere (it needs PyTorch; CPU is enough):

    python3 tools/gen_upsample_fixtures.py

It writes ``tests/fixtures/upsample_reference.json``, which is committed: ``tests/upsample.rs``
reads it and needs neither Python nor PyTorch. Everything is seeded, so the output is
deterministic. The file holds:

``cases``
    ``F.interpolate`` in float64 over a spread of settings: nearest, nearest-exact and linear
    (``linear`` / ``bilinear`` / ``trilinear`` by rank), ``align_corners`` both ways, integer and
    non-integer scale factors, ``recompute_scale_factor``, explicit sizes larger and smaller than
    the input, 1-D/2-D/3-D. Each case records a random input ``x``, PyTorch's output ``y``, a
    random upstream gradient ``g`` and PyTorch's input gradient ``grad_x``
    (``torch.autograd.grad(y, x, g)``). A few cases are in float32 (``dtype``).

``nonfinite``
    NaN and +-inf in ``x`` (output, and the gradient for a finite ``g``) and in ``g`` (the
    gradient). Non-finite numbers are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``.

``maps``
    Nearest and nearest-exact index maps of 1-D ``F.interpolate`` on ``arange(n)`` in float64
    and float32 (``src[d]``, the input index output ``d`` copies): the rounding of the source
    coordinate to float32 inside PyTorch's kernels makes the two dtypes differ for some sizes,
    and all such pairs of a sparse grid of ``n, o < 120`` are included.

``quirks``
    Settings where PyTorch's CPU kernels disagree with each other (see the module docs of
    ``adjoint::ops::upsample``): its nearest backward (and its 2-D nearest forward for outputs of
    at most 128 rows + columns) use ``nearest_idx``, which copies an axis whose size is unchanged
    and halves the index when the size doubles, whatever the scale factor, and computes in
    float32; its main forward kernel does not. Each quirk records PyTorch's ``y`` and
    ``grad_x`` and, as ``y_1d``, the output of its main kernel (1-D ``F.interpolate`` applied
    axis by axis), which adjoint follows.

Every ordinary case is checked here before it is written: PyTorch's gradient must be the adjoint
of its forward (``<g, y> = <grad_x, x>``), and a 2-D nearest output must equal the axis-by-axis
1-D result (so no case depends on the quirks above).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore")

SEED = 20240917
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "tests" / "fixtures" / "upsample_reference.json"
GENERATOR = "tools/gen_upsample_fixtures.py"
MAX_BYTES = 400_000

torch.manual_seed(SEED)
torch.set_default_dtype(torch.float64)

LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def number(v: float):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def encode(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": [number(v) for v in t.detach().reshape(-1).tolist()]}


def torch_mode(mode: str, rank: int) -> str:
    return LINEAR_MODES[rank] if mode == "linear" else mode


def call(x, spec):
    return F.interpolate(
        x,
        size=spec.get("size"),
        scale_factor=spec.get("scale_factor"),
        mode=torch_mode(spec["mode"], x.dim() - 2),
        align_corners=spec.get("align_corners"),
        recompute_scale_factor=spec.get("recompute_scale_factor"),
    )


def per_axis(v, rank):
    return v if isinstance(v, list) else [v] * rank


def axis_by_axis(x, spec):
    """Nearest modes through 1-D ``F.interpolate`` (always PyTorch's main kernel), one axis at
    a time, innermost first."""
    rank = x.dim() - 2
    sizes = per_axis(spec["size"], rank) if spec.get("size") is not None else None
    scales = per_axis(spec["scale_factor"], rank) if spec.get("scale_factor") is not None else None
    y = x
    for axis in reversed(range(rank)):
        moved = y.movedim(2 + axis, -1)
        lead = moved.shape[:-1]
        flat = moved.reshape(-1, 1, moved.shape[-1])
        kw = {"size": sizes[axis]} if sizes else {"scale_factor": scales[axis]}
        if spec.get("recompute_scale_factor"):
            kw["recompute_scale_factor"] = True
        out = F.interpolate(flat, mode=spec["mode"], **kw)
        y = out.reshape(*lead, out.shape[-1]).movedim(-1, 2 + axis)
    return y


def short_randn(shape, dtype):
    """Normal values rounded to 3 decimals: short in the JSON, and read back as the same
    numbers the fixture was computed from."""
    return (torch.randn(shape, dtype=torch.float64) * 1000).round().div(1000).to(dtype)


def run(spec, dtype=torch.float64, check=True):
    x = short_randn(spec["x_shape"], dtype).requires_grad_(True)
    y = call(x, spec)
    g = short_randn(y.shape, dtype)
    (grad_x,) = torch.autograd.grad(y, x, g)
    if check:
        lhs = (g.double() * y.double()).sum().item()
        rhs = (grad_x.double() * x.double()).sum().item()
        tol = 1e-12 if dtype == torch.float64 else 1e-4
        assert abs(lhs - rhs) <= tol * max(1.0, abs(lhs)), f"torch backward not adjoint for {spec}"
        if spec["mode"] != "linear":
            assert torch.equal(y, axis_by_axis(x, spec)), f"2-D legacy nearest path for {spec}"
    case = dict(spec)
    case["dtype"] = "f64" if dtype == torch.float64 else "f32"
    case.update(x=encode(x), y=encode(y), g=encode(g), grad_x=encode(grad_x))
    return case


def spec(mode, x_shape, size=None, scale_factor=None, align_corners=None, recompute=None):
    return {
        "mode": mode,
        "x_shape": list(x_shape),
        "size": size,
        "scale_factor": scale_factor,
        "align_corners": align_corners,
        "recompute_scale_factor": recompute,
    }


def ordinary_cases():
    specs = []
    for mode in ["nearest", "nearest-exact"]:
        specs += [
            # 1-D: integer and non-integer factors, up and down, explicit sizes.
            spec(mode, [2, 3, 5], scale_factor=2.0),
            spec(mode, [2, 3, 5], scale_factor=3.0),
            spec(mode, [1, 2, 5], scale_factor=1.7),
            spec(mode, [1, 2, 4], scale_factor=2.5),
            spec(mode, [1, 2, 7], scale_factor=0.5),
            spec(mode, [1, 2, 7], scale_factor=0.7),
            spec(mode, [1, 2, 5], scale_factor=1.7, recompute=True),
            spec(mode, [1, 2, 5], size=12),
            spec(mode, [1, 2, 8], size=3),
            spec(mode, [1, 2, 5], size=1),
            # 2-D
            spec(mode, [2, 3, 3, 4], scale_factor=2.0),
            spec(mode, [1, 2, 3, 4], scale_factor=[1.7, 2.5]),
            spec(mode, [1, 2, 5, 6], scale_factor=[0.5, 1.5]),
            spec(mode, [1, 2, 4, 5], size=[7, 9]),
            spec(mode, [1, 2, 6, 5], size=[2, 3]),
            spec(mode, [1, 1, 3, 4], size=1),
            spec(mode, [1, 2, 3, 4], scale_factor=[2.5, 1.7], recompute=True),
            # 2-D outputs above 128 rows + columns: PyTorch's generic kernel
            spec(mode, [1, 1, 2, 52], scale_factor=[1.5, 2.5]),
            # 3-D
            spec(mode, [1, 2, 2, 3, 2], scale_factor=2.0),
            spec(mode, [1, 1, 3, 2, 4], size=[5, 3, 2]),
            spec(mode, [2, 1, 3, 4, 2], scale_factor=[1.5, 0.75, 2.5]),
        ]
    for ac in [False, True, None]:
        if ac is None:
            # PyTorch's default (align_corners=None means False): a few cases only
            specs += [spec("linear", [1, 2, 5], scale_factor=2.0), spec("linear", [1, 2, 3, 4], size=[5, 7])]
            continue
        specs += [
            spec("linear", [2, 3, 5], scale_factor=2.0, align_corners=ac),
            spec("linear", [1, 2, 5], scale_factor=1.7, align_corners=ac),
            spec("linear", [1, 2, 4], scale_factor=2.5, align_corners=ac),
            spec("linear", [1, 2, 7], scale_factor=0.5, align_corners=ac),
            spec("linear", [1, 2, 5], scale_factor=1.3, align_corners=ac),  # size kept: copied
            spec("linear", [1, 2, 5], scale_factor=1.7, align_corners=ac, recompute=True),
            spec("linear", [1, 2, 5], size=12, align_corners=ac),
            spec("linear", [1, 2, 8], size=3, align_corners=ac),
            spec("linear", [1, 2, 5], size=1, align_corners=ac),
            spec("linear", [1, 2, 1], size=4, align_corners=ac),
            spec("linear", [2, 3, 3, 4], scale_factor=2.0, align_corners=ac),
            spec("linear", [1, 2, 3, 4], scale_factor=[1.7, 2.5], align_corners=ac),
            spec("linear", [1, 2, 5, 6], scale_factor=[0.5, 1.5], align_corners=ac),
            spec("linear", [1, 2, 4, 5], size=[7, 9], align_corners=ac),
            spec("linear", [1, 2, 6, 5], size=[2, 3], align_corners=ac),
            spec("linear", [1, 1, 3, 4], size=1, align_corners=ac),
            spec("linear", [1, 2, 4, 4], size=[4, 9], align_corners=ac),
            spec("linear", [1, 1, 2, 52], scale_factor=[1.5, 2.5], align_corners=ac),
            spec("linear", [1, 2, 2, 3, 2], scale_factor=2.0, align_corners=ac),
            spec("linear", [1, 1, 3, 2, 4], size=[5, 3, 2], align_corners=ac),
            spec("linear", [2, 1, 3, 4, 2], scale_factor=[1.5, 0.75, 2.5], align_corners=ac),
        ]
    cases = [run(s) for s in specs]
    # float32: the element type of training; index and weight arithmetic in f32.
    f32 = [
        spec("nearest", [1, 2, 26], size=22),
        spec("nearest", [1, 2, 3, 4], scale_factor=[1.7, 2.5]),
        spec("linear", [1, 2, 5], scale_factor=1.7, align_corners=False),
        spec("linear", [1, 2, 5], scale_factor=1.7, align_corners=True),
        spec("linear", [1, 2, 3, 4], size=[7, 9], align_corners=False),
        spec("linear", [1, 1, 3, 2, 4], size=[5, 3, 2], align_corners=True),
    ]
    cases += [run(s, torch.float32) for s in f32]
    return cases


def nonfinite_cases():
    nan, inf = float("nan"), float("inf")
    out = []
    inputs = {
        1: torch.tensor([[[0.5, inf, -2.0, nan, 4.0, -inf, 1.5]]]),
        2: torch.tensor([[[[0.5, inf, -2.0], [nan, 4.0, 1.0], [-inf, 1.5, 2.5]]]]),
    }
    settings = [
        ("nearest", None, 2.0),
        ("nearest", None, 1.7),
        ("nearest-exact", None, 1.7),
        ("linear", False, 2.0),
        ("linear", True, 2.0),
        ("linear", False, 1.0),  # the same size: x·1 + x·0, so ∞ becomes NaN
        ("linear", True, 0.7),
    ]
    for rank, base in inputs.items():
        for mode, ac, s in settings:
            sp = spec(mode, list(base.shape), scale_factor=s, align_corners=ac)
            x = base.clone().requires_grad_(True)
            y = call(x, sp)
            g = torch.linspace(-1.0, 2.0, y.numel()).reshape(y.shape)
            (grad_x,) = torch.autograd.grad(y, x, g)
            # A non-finite upstream gradient, at a few places.
            g_bad = g.clone().reshape(-1)
            g_bad[0], g_bad[len(g_bad) // 2], g_bad[-1] = nan, inf, -inf
            g_bad = g_bad.reshape(y.shape)
            x_ok = torch.zeros_like(base, requires_grad=True)
            (grad_bad,) = torch.autograd.grad(call(x_ok, sp), x_ok, g_bad)
            case = dict(sp)
            case.update(x=encode(x), y=encode(y), g=encode(g), grad_x=encode(grad_x))
            case.update(g_nonfinite=encode(g_bad), grad_x_nonfinite=encode(grad_bad))
            out.append(case)
    return out


MAP_SIZES = list(range(1, 9)) + [11, 13, 26, 39]
MAP_SCALES = [0.3, 0.5, 0.7, 1.0, 1.3, 1.5, 1.7, 2.0, 2.2, 2.5, 3.0, 1 / 3, 4.9]
MAP_OUTPUTS = [1, 2, 3, 5, 7, 11, 16, 22, 33]


def index_map(n, kw, dtype, mode):
    x = torch.arange(n, dtype=dtype).reshape(1, 1, n)
    return [int(v) for v in F.interpolate(x, mode=mode, **kw).reshape(-1).tolist()]


def maps():
    out = []

    def add(n, kw, mode):
        for dtype, name in [(torch.float64, "f64"), (torch.float32, "f32")]:
            entry = {"dtype": name, "mode": mode, "n": n, "size": None, "scale_factor": None}
            entry["recompute_scale_factor"] = kw.get("recompute_scale_factor")
            entry.update({k: v for k, v in kw.items() if k in ("size", "scale_factor")})
            entry["src"] = index_map(n, kw, dtype, mode)
            out.append(entry)

    for mode in ["nearest", "nearest-exact"]:
        for n in MAP_SIZES:
            for s in MAP_SCALES:
                if math.floor(n * s) >= 1:
                    add(n, {"scale_factor": s}, mode)
            for o in MAP_OUTPUTS:
                add(n, {"size": o}, mode)
            add(n, {"scale_factor": 1.7, "recompute_scale_factor": True}, mode)
        # Every (n, o) of a sparse grid below 120 where the float32 and float64 maps differ.
        for n in range(2, 120, 9):
            for o in range(1, 120, 2):
                kw = {"size": o}
                if index_map(n, kw, torch.float64, mode) != index_map(n, kw, torch.float32, mode):
                    add(n, kw, mode)
    return out


def quirks():
    out = []
    for name, sp in [
        ("size kept, factor 1.3 (1-D)", spec("nearest", [1, 1, 3], scale_factor=1.3)),
        ("size doubled, factor 2.2 (1-D)", spec("nearest", [1, 1, 3], scale_factor=2.2)),
        ("float32 index in the backward (1-D, 26 -> 22)", spec("nearest", [1, 1, 26], size=22)),
        ("2-D forward of a small output, factor 1.3", spec("nearest", [1, 1, 2, 3], scale_factor=[1.0, 1.3])),
    ]:
        x = short_randn(sp["x_shape"], torch.float64).requires_grad_(True)
        y = call(x, sp)
        g = short_randn(y.shape, torch.float64)
        (grad_x,) = torch.autograd.grad(y, x, g)
        case = dict(sp)
        case.update(name=name, x=encode(x), y=encode(y), y_1d=encode(axis_by_axis(x, sp)))
        case.update(g=encode(g), grad_x=encode(grad_x))
        out.append(case)
    return out


def main():
    fixtures = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "seed": SEED,
        "cases": ordinary_cases(),
        "nonfinite": nonfinite_cases(),
        "maps": maps(),
        "quirks": quirks(),
    }
    text = json.dumps(fixtures, separators=(",", ":"))
    assert len(text) <= MAX_BYTES, f"fixtures too large: {len(text)} bytes"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text + "\n")
    print(f"wrote {OUTPUT} ({len(text)} bytes, {len(fixtures['cases'])} cases, {len(fixtures['maps'])} maps)")


if __name__ == "__main__":
    main()
