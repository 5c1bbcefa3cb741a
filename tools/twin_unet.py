"""The U-Net of adjoint::models::UNet in PyTorch, and what the PyTorch twins of the examples share.

Imported by tools/gen_unet_fixtures.py (the state_dict the Rust tests compare against) and by
the twins tools/twin_segmentation.py and tools/twin_keypoints.py, so the class exists once.
"""
import argparse
import pathlib
import statistics
import time

import numpy as np
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


# The examples' model: widths (16, 32, 64) on one-channel 64x64 scenes.
WIDTHS = (16, 32, 64)


def twin_parser(doc, lr, epochs):
    """The flags both twins take; `lr` and `epochs` are the task's defaults."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=pathlib.Path, required=True,
                        help="directory written by the Rust example's --export-data (train/ and val/)")
    parser.add_argument("--upsample", choices=("transposed", "resize"), default="transposed")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--widths", type=lambda text: tuple(int(w) for w in text.split(",")), default=WIDTHS,
                        help="channels per level, comma-separated, as the Rust --widths")
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                        help="cosine: CosineAnnealingLR(T_max = all steps) stepped per batch, as "
                             "adjoint::optim::cosine_annealing")
    return parser


def adam(model, args, train_size):
    """Adam at --lr and, with --schedule cosine, its per-step cosine schedule (else None)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    total = args.epochs * -(-train_size // args.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total) if args.schedule == "cosine" else None
    return optimizer, schedule


def load_split(directory):
    """images [n, 1, 64, 64] float32, masks [n, 64, 64] uint8, keypoints [points, 5] float32."""
    return tuple(np.load(directory / f"{name}.npy") for name in ("images", "masks", "keypoints"))


def train_epoch(model, optimizer, images, targets, loss_fn, batch_size, generator, schedule=None):
    """One pass over a fresh permutation of the training set, the last partial batch kept.

    Returns the mean of the batch losses and each step's wall time in seconds; a step is
    forward, loss, backward and optimizer step (batch slicing is outside it, as on the Rust side).
    """
    order = torch.randperm(len(images), generator=generator)
    losses, steps = [], []
    for start in range(0, len(images), batch_size):
        idx = order[start:start + batch_size]
        x, target = images[idx], targets[idx]
        t0 = time.perf_counter()
        loss = loss_fn(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        steps.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return sum(losses) / len(losses), steps


@torch.no_grad()
def predict(model, images, batch_size=64):
    """The model's outputs in eval mode, in batches of 64; leaves the model in train mode."""
    model.eval()
    out = torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    model.train()
    return out


def median_ms(seconds):
    return 1000 * statistics.median(seconds)
