"""PyTorch float64 reference values for adjoint::models::ConvVae and vae_loss, for tests/vae.rs.

    python3 tools/gen_vae_fixtures.py

Writes tests/fixtures/vae_reference.json (committed; the Rust tests need no Python):

- "state_dict": for both upsampling modes at latent 16 (the issue's model), every state_dict
  entry of tools/twin_vae.py's ConvVAE in order with its shape, and the parameter count.
- "models": for both modes at latent 3, the whole model in float64 with weights set by a formula
  both sides compute (parameter number p in state_dict order, element i in row-major order:
  sin(0.9 i + 1.3 p + 0.2) / sqrt(fan), fan = numel / shape[0], and 0.5 sin(..) for a bias),
  so no weights are stored: two images x and noise eps, then mu, logvar, the logits, the three
  loss parts and the gradients of the total with respect to some parameters.
- "losses": vae_loss alone on random logits, images, mu and logvar: the three parts, the
  gradients of the total with respect to the logits, mu and logvar, and the second derivative
  d/d(mu, logvar) <v, d total/d(mu, logvar)> for random v (create_graph=True).
"""
import json
import math
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from twin_vae import ConvVAE, vae_loss  # noqa: E402  (the one copy of the class)

torch.set_default_dtype(torch.float64)
OUTPUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "vae_reference.json"
# Gradients compared in the "models" cases (each mode's names; the resize decoder nests its convs).
GRADIENTS = {
    "transposed": ["encoder.0.weight", "encoder.0.bias", "encoder.5.bias", "decoder.3.bias", "decoder.5.bias"],
    "resize": ["encoder.0.weight", "encoder.0.bias", "encoder.5.bias", "decoder.3.1.bias", "decoder.5.1.bias"],
}


def tensor(x):
    return {"shape": list(x.shape), "data": [float(v) for v in x.detach().reshape(-1)]}


def formula_weights(model):
    """The weights tests/vae.rs sets with the same formula."""
    with torch.no_grad():
        for p, (name, value) in enumerate(model.state_dict().items()):
            i = torch.arange(value.numel(), dtype=torch.float64)
            wave = torch.sin(0.9 * i + 1.3 * p + 0.2)
            scale = 0.5 if value.dim() == 1 else 1 / math.sqrt(value.numel() / value.shape[0])
            value.copy_((scale * wave).reshape(value.shape))


def model_case(mode):
    model = ConvVAE(3, mode)
    formula_weights(model)
    x = torch.rand(2, 1, 28, 28)
    eps = torch.randn(2, 3)
    logits, mu, logvar = model(x, eps)
    total, rec, kl = vae_loss(logits, x, mu, logvar)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(total, [params[name] for name in GRADIENTS[mode]])
    return {
        "upsample": mode, "latent": 3, "x": tensor(x), "eps": tensor(eps),
        "mu": tensor(mu), "logvar": tensor(logvar), "logits": tensor(logits),
        "total": total.item(), "rec": rec.item(), "kl": kl.item(),
        "grads": [[name, tensor(g)] for name, g in zip(GRADIENTS[mode], grads)],
    }


def loss_case(name, n, image, latent):
    logits = (3 * torch.randn(n, *image)).requires_grad_(True)
    x = torch.rand(n, *image)
    mu = torch.randn(n, latent).requires_grad_(True)
    logvar = (0.8 * torch.randn(n, latent)).requires_grad_(True)
    total, rec, kl = vae_loss(logits, x, mu, logvar)
    g_logits, g_mu, g_logvar = torch.autograd.grad(total, (logits, mu, logvar), create_graph=True)
    v_mu, v_logvar = torch.randn_like(mu), torch.randn_like(logvar)
    hvp_mu, hvp_logvar = torch.autograd.grad((g_mu * v_mu).sum() + (g_logvar * v_logvar).sum(), (mu, logvar))
    return {
        "name": name, "logits": tensor(logits), "x": tensor(x), "mu": tensor(mu), "logvar": tensor(logvar),
        "total": total.item(), "rec": rec.item(), "kl": kl.item(),
        "grad_logits": tensor(g_logits), "grad_mu": tensor(g_mu), "grad_logvar": tensor(g_logvar),
        "v_mu": tensor(v_mu), "v_logvar": tensor(v_logvar), "hvp_mu": tensor(hvp_mu), "hvp_logvar": tensor(hvp_logvar),
    }


def main():
    torch.manual_seed(20261203)
    state_dicts = {}
    for mode in ("transposed", "resize"):
        model = ConvVAE(16, mode)
        state_dicts[mode] = {
            "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    out = {
        "generator": "tools/gen_vae_fixtures.py",
        "state_dict": state_dicts,
        "models": [model_case(mode) for mode in ("transposed", "resize")],
        "losses": [loss_case("3 images of 1x4x4, latent 5", 3, (1, 4, 4), 5),
                   loss_case("1 image of 2x3x2, latent 1", 1, (2, 3, 2), 1)],
    }
    OUTPUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
