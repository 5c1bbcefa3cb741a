"""PyTorch's state_dict of the U-Net in adjoint::models::UNet's docs, for tests/models.rs.

    python3 tools/gen_unet_fixtures.py

Writes tests/fixtures/unet_state_dict.json: for both upsampling modes, every state_dict entry
in order with its shape and dtype, and the output shape of an odd-sized input. The Rust tests
compare the model's names, order and shapes against it (and need no Python).
"""
import json
import pathlib

import torch

# The one copy of the class, shared with the PyTorch twins of the examples.
from twin_unet import UNet

out = {}
for mode in ("transposed", "resize"):
    net = UNet(1, 5, (8, 16, 32), mode)
    y = net(torch.zeros(2, 1, 37, 64))
    out[mode] = {
        "state_dict": [[k, list(v.shape), str(v.dtype)] for k, v in net.state_dict().items()],
        "parameters": sum(p.numel() for p in net.parameters()),
        "output_shape": list(y.shape),
    }
path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "unet_state_dict.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
