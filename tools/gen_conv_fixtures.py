"""Generate PyTorch reference fixtures for convolution and transposed convolution.

For a fixed list of small cases this script runs ``torch.nn.functional``'s
conv1d/2d/3d and conv_transpose1d/2d/3d in float64 and records the inputs,
the forward output ``y`` and the gradients of ``sum(y * grad_y)`` with respect
to ``x``, ``w`` and ``b`` (``grad_y`` is a random upstream gradient). The cases
cover strides, symmetric and asymmetric explicit padding, 'same' and 'valid'
padding, dilation, groups (including depthwise), output_padding, odd, even and
non-square kernels, with and without bias, and batch sizes 1 and 2.

Run it by hand from anywhere (it needs PyTorch; CPU is enough):

    python3 tools/gen_conv_fixtures.py

It writes ``tests/fixtures/conv_reference.json``. That file is committed: the
Rust tests read the JSON directly and do not need Python or PyTorch. The output
is deterministic; each case is seeded with ``SEED + its index``, so appending a
case leaves the data of the existing ones unchanged.

Conventions are PyTorch's: layout N C (D) (H) W, row-major flat data, conv
weight ``[c_out, c_in/groups, k...]`` and transposed-conv weight
``[c_in, c_out/groups, k...]``. ``padding`` is recorded per spatial axis as
``[before, after]``; for 'same' and 'valid' it holds what PyTorch actually
applies. Asymmetric explicit padding (conv only) is computed as a zero
``F.pad`` of ``x`` followed by an unpadded conv.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

SEED = 1234
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "tests" / "fixtures" / "conv_reference.json"
GENERATOR = "tools/gen_conv_fixtures.py"
MAX_BYTES = 1_500_000

CONV_FNS = {"conv1d": F.conv1d, "conv2d": F.conv2d, "conv3d": F.conv3d}
TRANSPOSED_FNS = {
    "conv_transpose1d": F.conv_transpose1d,
    "conv_transpose2d": F.conv_transpose2d,
    "conv_transpose3d": F.conv_transpose3d,
}
OPS = [*CONV_FNS, *TRANSPOSED_FNS]

Ints = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Spec:
    """One fixture case; every tuple has one entry per spatial axis."""

    op: str
    batch: int
    c_in: int
    c_out: int
    size: Ints
    kernel: Ints
    stride: Ints
    padding: Pairs  # [before, after] per axis, as applied
    padding_mode: str  # "explicit" | "same" | "valid"
    dilation: Ints
    groups: int
    output_padding: Ints
    bias: bool

    @property
    def transposed(self) -> bool:
        return self.op in TRANSPOSED_FNS

    @property
    def symmetric(self) -> bool:
        return all(before == after for before, after in self.padding)

    @property
    def weight_shape(self) -> Ints:
        if self.transposed:
            return (self.c_in, self.c_out // self.groups, *self.kernel)
        return (self.c_out, self.c_in // self.groups, *self.kernel)

    @property
    def name(self) -> str:
        if self.padding_mode != "explicit":
            pad = self.padding_mode
        elif self.symmetric:
            pad = _axes(before for before, _ in self.padding)
        else:
            pad = "x".join(f"{before}-{after}" for before, after in self.padding)
        parts = [
            self.op,
            "k" + "x".join(map(str, self.kernel)),
            "s" + _axes(self.stride),
            "p" + pad,
            "d" + _axes(self.dilation),
            f"g{self.groups}",
        ]
        if self.transposed:
            parts.append("op" + _axes(self.output_padding))
        parts += [
            "i" + "x".join(map(str, self.size)),
            f"c{self.c_in}to{self.c_out}",
            f"n{self.batch}",
        ]
        if not self.bias:
            parts.append("nobias")
        return "_".join(parts)


def _axes(values) -> str:
    """'2' when every axis has the value 2, else '1x2x1'."""
    values = list(values)
    if len(set(values)) == 1:
        return str(values[0])
    return "x".join(map(str, values))


def _per_axis(value, ndim: int) -> Ints:
    if isinstance(value, int):
        return (value,) * ndim
    assert len(value) == ndim, (value, ndim)
    return tuple(value)


def _padding_pairs(padding, ndim: int) -> Pairs:
    """int -> same on every axis; ints -> symmetric per axis; pairs -> as given."""
    if isinstance(padding, int):
        return ((padding, padding),) * ndim
    assert len(padding) == ndim, (padding, ndim)
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)


def conv(op, batch, c_in, c_out, size, kernel, *, stride=1, padding=0,
         dilation=1, groups=1, bias=True) -> Spec:
    """A conv case. ``padding`` may also be 'same' or 'valid'."""
    assert op in CONV_FNS, op
    ndim = int(op[-2])
    kernel = _per_axis(kernel, ndim)
    stride = _per_axis(stride, ndim)
    dilation = _per_axis(dilation, ndim)
    if padding == "same":
        assert all(s == 1 for s in stride), "PyTorch allows 'same' only with stride 1"
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        pairs = tuple((t // 2, t - t // 2) for t in totals)
        mode = "same"
    elif padding == "valid":
        pairs = ((0, 0),) * ndim
        mode = "valid"
    else:
        pairs = _padding_pairs(padding, ndim)
        mode = "explicit"
    return Spec(op, batch, c_in, c_out, _per_axis(size, ndim), kernel, stride,
                pairs, mode, dilation, groups, (0,) * ndim, bias)


def conv_t(op, batch, c_in, c_out, size, kernel, *, stride=1, padding=0,
           dilation=1, groups=1, output_padding=0, bias=True) -> Spec:
    """A transposed-conv case; padding is symmetric per axis."""
    assert op in TRANSPOSED_FNS, op
    ndim = int(op[-2])
    pairs = _padding_pairs(padding, ndim)
    assert all(before == after for before, after in pairs), pairs
    return Spec(op, batch, c_in, c_out, _per_axis(size, ndim),
                _per_axis(kernel, ndim), _per_axis(stride, ndim), pairs,
                "explicit", _per_axis(dilation, ndim), groups,
                _per_axis(output_padding, ndim), bias)


# Comments flag what each case adds; "rem" marks (i + pb + pa - k_e) % s != 0
# on some axis, where k_e = d * (k - 1) + 1 is the dilated kernel extent.
CASES = [
    # ---- conv1d ----
    conv("conv1d", 1, 1, 1, 5, 3),
    conv("conv1d", 2, 2, 3, 8, 3, stride=2, padding=1),  # rem
    conv("conv1d", 1, 3, 2, 8, 4, stride=3, padding=2, bias=False),  # even k, rem
    conv("conv1d", 1, 2, 4, 9, 3, padding=2, dilation=2),
    conv("conv1d", 2, 4, 6, 7, 3, padding=1, groups=2),
    conv("conv1d", 1, 3, 3, 6, 2, groups=3, bias=False),  # depthwise
    conv("conv1d", 1, 3, 6, 8, 3, stride=2, padding=1, dilation=2, groups=3),  # depthwise x2, rem
    conv("conv1d", 1, 2, 3, 7, 1, stride=3),  # stride > kernel: skipped inputs
    conv("conv1d", 2, 2, 2, 5, 5),  # kernel spans input: output length 1
    conv("conv1d", 1, 2, 3, 6, 3, stride=2, padding=[(0, 2)]),  # rem
    conv("conv1d", 1, 2, 4, 8, 4, stride=3, padding=[(2, 1)], dilation=2, groups=2),  # rem
    conv("conv1d", 1, 2, 3, 7, 3, padding="same"),
    conv("conv1d", 2, 2, 2, 6, 4, padding="same"),  # even k: split 1/2
    conv("conv1d", 1, 2, 2, 7, 3, padding="same", dilation=2),
    conv("conv1d", 1, 4, 2, 7, 2, padding="same", dilation=3, groups=2, bias=False),  # split 1/2
    conv("conv1d", 1, 3, 2, 8, 3, stride=2, padding="valid"),  # rem
    # ---- conv2d ----
    conv("conv2d", 1, 1, 1, (5, 5), (3, 3)),
    conv("conv2d", 1, 2, 3, (7, 7), (3, 3), stride=2, padding=1),
    conv("conv2d", 2, 2, 3, (8, 6), (3, 3), stride=2, padding=1),  # rem
    conv("conv2d", 1, 2, 2, (6, 7), (2, 3)),
    conv("conv2d", 1, 3, 2, (5, 7), (1, 4), stride=(1, 2), padding=(0, 1), bias=False),  # rem
    conv("conv2d", 1, 2, 3, (7, 4), (3, 1), stride=(3, 1), padding=(2, 0)),  # rem
    conv("conv2d", 2, 4, 2, (7, 6), (3, 3), stride=(1, 2), padding=(0, 2),
         dilation=(2, 1), groups=2),  # rem
    conv("conv2d", 1, 4, 4, (7, 5), (3, 3), stride=2, padding=1, groups=4,
         bias=False),  # depthwise
    conv("conv2d", 1, 6, 3, (8, 9), (2, 2), stride=2, padding=2, dilation=2, groups=3),  # rem
    conv("conv2d", 1, 2, 2, (8, 9), (4, 4), stride=3, padding=2),  # even k, rem
    conv("conv2d", 1, 2, 2, (5, 5), (2, 2), padding=[(1, 0), (0, 1)]),
    conv("conv2d", 1, 2, 4, (6, 7), (3, 3), stride=2, padding=[(0, 2), (1, 2)],
         dilation=(1, 2), groups=2),  # rem
    conv("conv2d", 2, 3, 2, (6, 5), (3, 2), stride=(2, 3), padding=[(2, 0), (0, 0)],
         bias=False),  # rem
    conv("conv2d", 1, 2, 3, (5, 6), (2, 3), padding="same"),  # split 0/1 on axis 0
    conv("conv2d", 1, 2, 2, (7, 7), (3, 3), padding="same", dilation=2),
    conv("conv2d", 2, 4, 2, (6, 7), (4, 3), padding="same", dilation=(1, 2), groups=2,
         bias=False),  # split 1/2 on axis 0
    conv("conv2d", 1, 2, 3, (8, 8), (3, 2), stride=(2, 3), padding="valid"),  # rem
    # ---- conv3d ----
    conv("conv3d", 1, 1, 2, (4, 4, 4), (3, 3, 3)),
    conv("conv3d", 2, 2, 2, (5, 4, 3), (2, 3, 1), stride=(2, 1, 1), padding=(1, 1, 0)),  # rem
    conv("conv3d", 1, 2, 4, (5, 5, 5), (3, 3, 3), stride=2, padding=1, groups=2, bias=False),
    conv("conv3d", 1, 2, 2, (5, 4, 5), (2, 2, 2), padding=(1, 0, 2), dilation=2),
    conv("conv3d", 1, 3, 3, (4, 5, 5), (2, 2, 2), stride=(1, 2, 2), groups=3),  # depthwise, rem
    conv("conv3d", 1, 3, 6, (5, 5, 4), (1, 2, 3), stride=3, padding=2, groups=3),  # rem
    conv("conv3d", 1, 2, 2, (4, 4, 4), (2, 2, 2), padding=[(0, 1), (1, 0), (0, 0)]),
    conv("conv3d", 1, 2, 2, (5, 4, 5), (3, 2, 2), stride=(2, 1, 2),
         padding=[(1, 2), (0, 1), (2, 0)], dilation=(1, 2, 1)),  # rem
    conv("conv3d", 1, 2, 3, (4, 4, 4), (2, 3, 2), padding="same"),
    conv("conv3d", 1, 1, 1, (5, 5, 5), (3, 3, 3), padding="same", dilation=2, bias=False),
    conv("conv3d", 1, 2, 2, (5, 4, 5), (2, 2, 3), stride=2, padding="valid"),  # rem
    conv("conv3d", 2, 2, 2, (5, 5, 4), (3, 2, 2), stride=(1, 2, 3), padding=(2, 0, 1),
         dilation=(2, 1, 1)),  # rem
    # ---- conv_transpose1d ----
    conv_t("conv_transpose1d", 1, 1, 1, 4, 3),
    conv_t("conv_transpose1d", 2, 2, 3, 5, 3, stride=2, padding=1, output_padding=1),
    conv_t("conv_transpose1d", 1, 3, 2, 4, 4, stride=3, padding=2, output_padding=2,
           bias=False),
    conv_t("conv_transpose1d", 1, 2, 2, 5, 2, stride=2),  # stride == kernel: no overlap
    conv_t("conv_transpose1d", 1, 2, 3, 4, 1, stride=3),  # stride > kernel: gaps
    conv_t("conv_transpose1d", 1, 2, 2, 5, 3, padding=1, dilation=2,
           output_padding=1),  # stride <= output_padding < dilation
    conv_t("conv_transpose1d", 1, 4, 2, 5, 3, stride=2, padding=2, dilation=2, groups=2,
           output_padding=1),
    conv_t("conv_transpose1d", 1, 3, 3, 5, 3, stride=2, padding=1, groups=3),  # depthwise
    conv_t("conv_transpose1d", 2, 2, 4, 4, 2, stride=2, padding=1, groups=2,
           output_padding=1, bias=False),  # groups == c_in, multiplier 2
    conv_t("conv_transpose1d", 1, 2, 2, 5, 3, padding=2),  # padding == k_e - 1
    conv_t("conv_transpose1d", 1, 2, 3, 6, 3, padding=3),  # padding > k_e - 1
    conv_t("conv_transpose1d", 1, 2, 2, 5, 3, stride=2, padding=4),  # padding > k_e - 1
    conv_t("conv_transpose1d", 1, 3, 6, 4, 4, stride=3, padding=2, dilation=2, groups=3,
           output_padding=2),
    # ---- conv_transpose2d ----
    conv_t("conv_transpose2d", 1, 1, 1, (3, 3), (3, 3)),
    conv_t("conv_transpose2d", 2, 2, 2, (4, 3), (3, 3), stride=2, padding=1,
           output_padding=1),
    conv_t("conv_transpose2d", 1, 2, 3, (4, 5), (2, 3), stride=(2, 1), padding=(0, 1)),
    conv_t("conv_transpose2d", 1, 2, 2, (3, 4), (1, 4), stride=(3, 2), output_padding=(2, 1),
           bias=False),
    conv_t("conv_transpose2d", 1, 2, 2, (4, 4), (3, 1), stride=(1, 2), dilation=(2, 1),
           output_padding=1),  # axis 0: stride <= output_padding < dilation
    conv_t("conv_transpose2d", 1, 4, 4, (4, 4), (3, 3), stride=2, padding=1, groups=4,
           output_padding=1),  # depthwise
    conv_t("conv_transpose2d", 1, 4, 2, (3, 4), (2, 2), stride=2, groups=2),
    conv_t("conv_transpose2d", 1, 3, 6, (3, 4), (3, 3), stride=3, padding=2, dilation=2,
           groups=3, output_padding=(2, 1)),
    conv_t("conv_transpose2d", 1, 2, 2, (5, 6), (3, 3), padding=4, dilation=2),  # p == k_e - 1
    conv_t("conv_transpose2d", 2, 2, 3, (5, 4), (3, 3), stride=(1, 2), padding=(0, 2),
           dilation=(2, 1), output_padding=(1, 0)),
    conv_t("conv_transpose2d", 1, 2, 2, (4, 5), (2, 2), stride=(2, 3),
           padding=(2, 3)),  # p > k_e - 1
    conv_t("conv_transpose2d", 2, 2, 2, (3, 3), (4, 4), stride=2, padding=1, bias=False),
    # ---- conv_transpose3d ----
    conv_t("conv_transpose3d", 1, 1, 1, (2, 2, 2), (2, 2, 2)),
    conv_t("conv_transpose3d", 2, 2, 2, (3, 3, 2), (3, 3, 3), stride=2, padding=1,
           output_padding=1),
    conv_t("conv_transpose3d", 1, 2, 3, (3, 3, 3), (2, 3, 1), stride=(1, 2, 3),
           padding=(0, 1, 0), output_padding=(0, 1, 2)),
    conv_t("conv_transpose3d", 1, 3, 3, (3, 3, 3), (2, 2, 2), stride=2, groups=3,
           bias=False),  # depthwise
    conv_t("conv_transpose3d", 1, 4, 2, (3, 3, 2), (3, 2, 2), padding=1, dilation=2,
           groups=2, output_padding=1),  # stride <= output_padding < dilation
    conv_t("conv_transpose3d", 1, 3, 6, (2, 3, 2), (1, 1, 1), stride=3, groups=3,
           output_padding=(1, 2, 0)),  # stride > kernel: gaps
    conv_t("conv_transpose3d", 1, 2, 2, (4, 4, 3), (2, 2, 2), stride=(1, 2, 1),
           padding=(1, 2, 1)),  # p >= k_e - 1
    conv_t("conv_transpose3d", 1, 2, 2, (3, 3, 3), (2, 2, 2), stride=(1, 2, 1),
           dilation=(2, 1, 1), output_padding=(1, 1, 0)),
    conv_t("conv_transpose3d", 1, 2, 2, (3, 2, 3), (3, 3, 3), stride=3, padding=2,
           output_padding=2),
    conv_t("conv_transpose3d", 2, 2, 2, (2, 3, 2), (2, 3, 2), stride=2, padding=1,
           dilation=2, output_padding=1, bias=False),
]


def expected_spatial(spec: Spec) -> Ints:
    """Output spatial size by PyTorch's documented formulas."""
    out = []
    for i, k, s, (pb, pa), d, op in zip(spec.size, spec.kernel, spec.stride, spec.padding,
                                        spec.dilation, spec.output_padding):
        if spec.transposed:
            out.append((i - 1) * s - 2 * pb + d * (k - 1) + op + 1)
        else:
            out.append((i + pb + pa - d * (k - 1) - 1) // s + 1)
    return tuple(out)


def torch_pad_arg(padding: Pairs) -> list[int]:
    """F.pad wants (before, after) pairs starting from the last axis."""
    return [p for pair in reversed(padding) for p in pair]


def forward(spec: Spec, x, w, b):
    common = dict(stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    if spec.transposed:
        padding = [before for before, _ in spec.padding]
        return TRANSPOSED_FNS[spec.op](x, w, b, padding=padding,
                                       output_padding=spec.output_padding, **common)
    conv_fn = CONV_FNS[spec.op]

    def explicit_pad():
        return conv_fn(F.pad(x, torch_pad_arg(spec.padding)), w, b, padding=0, **common)

    if spec.padding_mode != "explicit":
        with warnings.catch_warnings():
            # Expected for even kernels with odd dilation; the result is still exact.
            warnings.filterwarnings("ignore", message="Using padding='same'")
            y = conv_fn(x, w, b, padding=spec.padding_mode, **common)
        # The recorded [before, after] pairs must be what PyTorch applied.
        with torch.no_grad():
            assert torch.allclose(y, explicit_pad(), rtol=0, atol=1e-12), spec.name
        return y
    if spec.symmetric:
        return conv_fn(x, w, b, padding=[before for before, _ in spec.padding], **common)
    return explicit_pad()


def encode(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def run_case(spec: Spec, seed: int) -> dict:
    torch.manual_seed(seed)
    f64 = dict(dtype=torch.float64, requires_grad=True)
    x = torch.randn(spec.batch, spec.c_in, *spec.size, **f64)
    w = torch.randn(*spec.weight_shape, **f64)
    b = torch.randn(spec.c_out, **f64) if spec.bias else None

    y = forward(spec, x, w, b)
    expected = (spec.batch, spec.c_out, *expected_spatial(spec))
    assert tuple(y.shape) == expected, (spec.name, tuple(y.shape), expected)
    assert min(expected) >= 1, spec.name

    grad_y = torch.randn(y.shape, dtype=torch.float64)
    (y * grad_y).sum().backward()

    return {
        "name": spec.name,
        "op": spec.op,
        "stride": list(spec.stride),
        "padding": [list(pair) for pair in spec.padding],
        "padding_mode": spec.padding_mode,
        "dilation": list(spec.dilation),
        "groups": spec.groups,
        "output_padding": list(spec.output_padding),
        "x": encode(x),
        "w": encode(w),
        "b": encode(b) if b is not None else None,
        "grad_y": encode(grad_y),
        "y": encode(y),
        "grad_x": encode(x.grad),
        "grad_w": encode(w.grad),
        "grad_b": encode(b.grad) if b is not None else None,
    }


def to_json(doc: dict) -> str:
    """JSON with one line per case field: compact, yet diffable."""

    def compact(value) -> str:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)

    def case_block(case: dict) -> str:
        fields = ",\n".join(f"      {json.dumps(k)}: {compact(v)}" for k, v in case.items())
        return "    {\n" + fields + "\n    }"

    header = ",\n".join(f"  {json.dumps(k)}: {compact(v)}"
                        for k, v in doc.items() if k != "cases")
    cases = ",\n".join(case_block(c) for c in doc["cases"])
    return "{\n" + header + ',\n  "cases": [\n' + cases + "\n  ]\n}\n"


def summary(op: str) -> str:
    specs = [s for s in CASES if s.op == op]
    counts = {
        "explicit asymmetric": sum(s.padding_mode == "explicit" and not s.symmetric
                                   for s in specs),
        "same": sum(s.padding_mode == "same" for s in specs),
        "valid": sum(s.padding_mode == "valid" for s in specs),
        "grouped": sum(s.groups > 1 for s in specs),
        "no bias": sum(not s.bias for s in specs),
    }
    details = ", ".join(f"{label} {n}" for label, n in counts.items() if n)
    return f"{op:17} {len(specs):3} cases ({details})"


def main() -> None:
    cases = [run_case(spec, SEED + index) for index, spec in enumerate(CASES)]

    names = [c["name"] for c in cases]
    duplicates = [n for n, count in Counter(names).items() if count > 1]
    assert not duplicates, duplicates

    doc = {"generator": GENERATOR, "torch_version": torch.__version__, "cases": cases}
    text = to_json(doc)
    # Every float is written with full precision: parsing gives back the same doc.
    assert json.loads(text) == doc
    size = len(text.encode())
    assert size <= MAX_BYTES, f"fixture file too large: {size} bytes"

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)

    for op in OPS:
        print(summary(op))
    print(f"{len(cases)} cases, torch {torch.__version__}, "
          f"wrote {OUTPUT.relative_to(REPO_ROOT)} ({size} bytes)")


if __name__ == "__main__":
    main()
