"""PyTorch's state_dict of the U-Net in adjoint::models::UNet's docs, for tests/models.rs.

    python3 tools/gen_unet_fixtures.py

Writes tests/fixtures/unet_state_dict.json: for both upsampling modes, every state_dict entry
in order with its shape and dtype, and the output shape of an odd-sized input. The Rust tests
compare the model's names, order and shapes against it (and need no Python).
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, c_in, classes, widths, upsample):
        super().__init__()
        self.down = nn.ModuleList(block(a, b) for a, b in zip((c_in,) + widths[:-2], widths[:-1]))
        self.bottom = block(widths[-2], widths[-1])
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(b, a, 2, stride=2) if upsample == "transposed" else nn.Conv2d(b, a, 3, padding=1)
            for a, b in reversed(list(zip(widths[:-1], widths[1:]))))
        self.dec = nn.ModuleList(block(2 * a, a) for a in reversed(widths[:-1]))
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            if isinstance(up, nn.ConvTranspose2d):
                x = up(x, output_size=skip.shape)
            else:
                x = up(F.interpolate(x, size=skip.shape[2:], mode="nearest"))
            x = dec(torch.cat([skip, x], 1))
        return self.head(x)


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
