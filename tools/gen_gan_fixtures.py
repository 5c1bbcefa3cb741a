"""PyTorch reference values for adjoint::models' DCGAN and digit classifier.

    python3 tools/gen_gan_fixtures.py

Writes ``tests/fixtures/gan_reference.json`` (committed; ``tests/gan.rs`` reads it and needs no
Python). For each model of ``tools/twin_gan.py`` (the generator with both upsampling kinds,
latent 4; the discriminator; the classifier with 10 classes): PyTorch's own ``state_dict()``
(names, shapes, dtypes, in order), its parameter count, and float64 forward values.

The weights are not stored (the layers hold some 400,000 numbers): every parameter and float
buffer is filled with a formula the Rust test evaluates too, entry ``k`` of the ``t``-th
state_dict tensor being

    v = ((7919·k + 13·t) mod 2001) / 1000 − 1                    (in [−1, 1])
    weight (2 or more axes):  v / √(numel / shape[0])          (the layer's fan-in)
    running_var:              1 + |v| / 2
    other 1-axis tensors:     v / 2

(each step one correctly rounded float64 operation, so both sides hold the same bits).
Outputs: the model in eval mode (batch norm with those running statistics), then in training
mode (batch statistics), then the running statistics that training-mode forward left.
"""
import json
from pathlib import Path

import torch

from twin_gan import classifier, discriminator, generator

torch.set_default_dtype(torch.float64)
OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gan_reference.json"


def tensor(x):
    return {"shape": list(x.shape), "data": [float(v) for v in x.detach().reshape(-1)]}


def fill(model):
    with torch.no_grad():
        for t, (name, value) in enumerate(model.state_dict().items()):
            if not value.is_floating_point():
                continue
            k = torch.arange(value.numel(), dtype=torch.int64)
            v = ((7919 * k + 13 * t) % 2001).double() / 1000 - 1
            if value.dim() >= 2:
                v = v / (value.numel() / value.shape[0]) ** 0.5
            elif name.endswith("running_var"):
                v = 1 + v.abs() / 2
            else:
                v = v / 2
            value.copy_(v.reshape(value.shape))


def case(model, x):
    fill(model)
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
        model.train()
        train_out = model(x)
    buffers = {k: tensor(v) for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    return {
        "state_dict": [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()],
        "parameters": sum(p.numel() for p in model.parameters()),
        "x": tensor(x),
        "eval": tensor(eval_out),
        "train": tensor(train_out),
        "running_after_train": buffers,
    }


def main():
    torch.manual_seed(20261203)
    z = torch.randn(3, 4)
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    fixtures = {
        "generator": "tools/gen_gan_fixtures.py",
        "generator_transposed": case(generator(4, "transposed"), z),
        "generator_resize": case(generator(4, "resize"), z),
        "discriminator": case(discriminator(), images),
        "classifier": case(classifier(10), images),
    }
    OUTPUT.write_text(json.dumps(fixtures) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
