"""Prints what PyTorch computes for non-finite inputs, for tests/nan.rs.

    python3 tools/nan_semantics.py

The Rust test keeps these numbers as literals (the tests must not need Python); rerun this to
check them against a newer PyTorch.
"""
import torch

torch.set_default_dtype(torch.float64)
nan, inf = float("nan"), float("inf")
x = torch.tensor([nan, -1.0, 2.0, inf, -inf, -0.0, 0.0], requires_grad=True)
seed = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])  # a distinct upstream gradient per cell

def show(name, f):
    y = f(x)
    (g,) = torch.autograd.grad(y, x, seed)
    print(f"{name}:\n  y  = {y.tolist()}\n  dx = {g.tolist()}")

show("relu", torch.relu)
show("leaky_relu(0.2)", lambda v: torch.nn.functional.leaky_relu(v, 0.2))
show("sigmoid", torch.sigmoid)
show("tanh", torch.tanh)
show("exp", torch.exp)

z = torch.tensor([[inf, 1.0], [-inf, 1.0], [nan, 1.0], [-inf, -inf]], requires_grad=True)
print("log_softmax(dim=1):", torch.log_softmax(z, 1).tolist())
t = torch.tensor([[0.0, 1.0]] * 4)
print("bce_with_logits(reduction='none'), target rows [0, 1]:",
      torch.nn.functional.binary_cross_entropy_with_logits(z, t, reduction="none").tolist())
