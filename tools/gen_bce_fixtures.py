"""PyTorch reference values for adjoint's ``bce_with_logits`` and ``bce_with_logits_weighted``.

    python3 tools/gen_bce_fixtures.py

Writes ``tests/fixtures/bce_reference.json`` (committed; ``tests/bce.rs`` reads it and needs
no Python). Float64, seeded. Each case: logits ``z``, targets ``t``, an optional ``weight``
(broadcast against ``z`` as PyTorch does), and what
``F.binary_cross_entropy_with_logits(z, t, weight=weight)`` gives: the loss, its gradients
with respect to ``z`` and ``t``, and the second derivative ``d/dz <v, dloss/dz>`` for a
random ``v`` (``create_graph=True``).
"""
import json
from pathlib import Path

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "bce_reference.json"


def tensor(x):
    return {"shape": list(x.shape), "data": [float(v) for v in x.detach().reshape(-1)]}


def case(name, z, t, weight):
    z = z.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(z, t, weight=weight)
    grad_z, grad_t = torch.autograd.grad(loss, (z, t), create_graph=True)
    v = torch.randn_like(z)
    (hvp,) = torch.autograd.grad((grad_z * v).sum(), z)
    out = {"name": name, "z": tensor(z), "t": tensor(t), "loss": float(loss.detach()),
           "grad_z": tensor(grad_z), "grad_t": tensor(grad_t), "v": tensor(v), "hvp": tensor(hvp)}
    if weight is not None:
        out["weight"] = tensor(weight)
    return out


def main():
    torch.manual_seed(20261203)
    cases = []
    z, t = 3 * torch.randn(6), torch.rand(6)
    cases.append(case("unweighted [6]", z, t, None))
    cases.append(case("weighted [6]", z, t, 0.5 + 3 * torch.rand(6)))
    z, t = 3 * torch.randn(2, 3), torch.rand(2, 3)
    cases.append(case("weight [1, 3] broadcast over [2, 3]", z, t, 0.5 + 3 * torch.rand(1, 3)))
    # A heat map and its peak weighting, as the key-point example trains it.
    z, t = 4 * torch.randn(2, 2, 5, 5), torch.rand(2, 2, 5, 5) ** 4
    cases.append(case("heat map, weight 1 + 10 t", z, t, 1 + 10 * t))
    z = torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0])
    cases.append(case("large logits, weighted", z, torch.tensor([0.0, 1.0, 0.5, 0.0, 1.0]), torch.tensor([2.0, 0.0, 1.0, 3.0, 1.0])))
    OUTPUT.write_text(json.dumps({"generator": "tools/gen_bce_fixtures.py", "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
