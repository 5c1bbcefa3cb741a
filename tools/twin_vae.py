"""PyTorch twin of examples/vae.rs: the same convolutional VAE, loss, settings and data.

    python3 tools/twin_vae.py --data-dir ../shared/data/mnist --epochs 10   # MNIST-format files
    cargo run --release --example vae -- --export-data /tmp/vae-shapes      # the synthetic shapes
    python3 tools/twin_vae.py --data /tmp/vae-shapes

With --data-dir the first --train-size images (9,000) of the IDX file train and the rest
validate, as in the Rust example; with --data it reads the train/ and val/ images.npy the Rust
example's --export-data wrote. Adam 1e-3, batch 64, latent 16 by default. After each epoch it
prints the validation negative ELBO in nats per image with its reconstruction and KL parts (one
sample of z per image, from a generator seeded with the seed, so each epoch scores with the same
noise) and the median training step (forward, loss, backward, Adam step). The last line,
`RESULT {json}`, is for docs/generators.md.

The ConvVAE class is the one adjoint::models::ConvVae's docs show; tools/gen_vae_fixtures.py
imports it, so the class exists once.
"""
import argparse
import gzip
import json
import pathlib
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def up(c_in, c_out, upsample):
    """One x2 upsampling step: a 4x4 stride-2 transposed conv, or Distill's nearest resize + 3x3 conv."""
    if upsample == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1))


class ConvVAE(nn.Module):
    def __init__(self, latent=16, upsample="transposed"):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(3136, 2 * latent))
        self.decoder = nn.Sequential(
            nn.Linear(latent, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            up(64, 32, upsample), nn.ReLU(), up(32, 1, upsample))

    def encode(self, x):
        return self.encoder(x).chunk(2, dim=1)

    def forward(self, x, eps):
        """Logits, mu and logvar for images x and noise eps (given, so a test can fix it)."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decoder(z), mu, logvar


def vae_loss(logits, x, mu, logvar):
    """(total, reconstruction, KL) in nats per image, averaged over the batch."""
    n = x.shape[0]
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / n
    return rec + kl, rec, kl


def read_idx_images(directory):
    """The images of an MNIST-format directory as float32 [n, 1, 28, 28] in [0, 1] (the names
    adjoint::data::load_mnist_dir looks for, in its order)."""
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        for name, opener in ((stem, open), (stem + ".gz", gzip.open)):
            path = directory / name
            if path.is_file():
                with opener(path, "rb") as f:
                    data = f.read()
                magic, n, h, w = np.frombuffer(data[:16], dtype=">u4")
                assert magic == 2051, f"{path}: not an IDX images file"
                pixels = np.frombuffer(data[16:], dtype=np.uint8).reshape(n, 1, h, w)
                return pixels.astype(np.float32) / 255.0
    raise SystemExit(f"{directory}: no MNIST-format images file")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", type=pathlib.Path, help="MNIST-format IDX files")
    source.add_argument("--data", type=pathlib.Path, help="train/ and val/ images.npy from the Rust --export-data")
    parser.add_argument("--train-size", type=int, default=9000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--upsample", choices=("transposed", "resize"), default="transposed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    if args.data_dir is not None:
        images = read_idx_images(args.data_dir)
        train, val = images[:args.train_size], images[args.train_size:]
    else:
        train, val = (np.load(args.data / split / "images.npy") for split in ("train", "val"))
    train, val = torch.from_numpy(np.ascontiguousarray(train)), torch.from_numpy(np.ascontiguousarray(val))
    print(f"data: {len(train)} training, {len(val)} validation images", flush=True)

    model = ConvVAE(args.latent, args.upsample)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    shuffle = torch.Generator().manual_seed(args.seed)
    all_steps, started = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        steps = []
        order = torch.randperm(len(train), generator=shuffle)
        for start in range(0, len(train), args.batch_size):
            x = train[order[start:start + args.batch_size]]
            s0 = time.perf_counter()
            logits, mu, logvar = model(x, torch.randn(len(x), args.latent))
            loss, _, _ = vae_loss(logits, x, mu, logvar)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps.append(time.perf_counter() - s0)
        train_s = time.perf_counter() - t0
        with torch.no_grad():
            noise = torch.Generator().manual_seed(args.seed)
            sums = np.zeros(3)
            for start in range(0, len(val), 256):
                x = val[start:start + 256]
                eps = torch.randn(len(x), args.latent, generator=noise)
                logits, mu, logvar = model(x, eps)
                sums += len(x) * np.array([float(v) for v in vae_loss(logits, x, mu, logvar)])
            total, rec, kl = sums / len(val)
        all_steps += steps
        print(f"epoch {epoch:>3}: validation -ELBO {total:.2f} nats (rec {rec:.2f}, KL {kl:.2f})  "
              f"step {1000 * statistics.median(steps):.1f} ms  ({train_s:.1f} s training)", flush=True)
    print("RESULT " + json.dumps({
        "seed": args.seed, "epochs": args.epochs, "upsample": args.upsample, "latent": args.latent,
        "neg_elbo": total, "rec": rec, "kl": kl, "step_ms": 1000 * statistics.median(all_steps),
        "seconds": time.perf_counter() - started,
    }))


if __name__ == "__main__":
    main()
