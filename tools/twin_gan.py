"""The PyTorch twin of examples/gan.rs: the same DCGAN, classifier, settings and scores.

    python3 tools/twin_gan.py --data-dir ../shared/data/mnist --epochs 10
    python3 tools/twin_gan.py --data-dir ../shared/data/mnist --epochs 10 --upsample resize

Reads MNIST-format IDX files (raw or .gz): the first --train-size images train, the rest
validate the classifier. It trains the classifier first (Adam 1e-3, batch 64, cross-entropy;
prints its validation accuracy), then the GAN: per batch a discriminator step on the real batch
and a batch of samples (BCE with logits, real = 1, fake = 0, each batch through D on its own),
then a generator step on fresh samples from the same noise (non-saturating loss: BCE against
"real"), Adam 2e-4, betas (0.5, 0.999), batch norm in training mode. After each epoch it scores
1,000 samples from fixed noise with the generator in eval mode: the classifier's mean top-class
confidence, the entropy of its predicted classes, and the checkerboard score (share of energy
at the 2x2 period), as adjoint::metrics does. Step times are the median of the epoch's steps
(a D step and a G step). PyTorch's own default initialisation, as adjoint's layers use.

Also imported by tools/gen_gan_fixtures.py, so the models exist once.
"""
import argparse
import gzip
import math
import pathlib
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def generator(latent=32, upsample="transposed"):
    def up(c_in, c_out):
        if upsample == "transposed":
            return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1)]

    return nn.Sequential(
        nn.Unflatten(1, (latent, 1, 1)),
        nn.ConvTranspose2d(latent, 128, 7), nn.BatchNorm2d(128), nn.ReLU(),
        *up(128, 64), nn.BatchNorm2d(64), nn.ReLU(),
        *up(64, 1), nn.Tanh())


def discriminator():
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 1, 7), nn.Flatten())


def classifier(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, classes))


def checkerboard_score(images):
    """adjoint::metrics::checkerboard_score: images [n, h, w], float64."""
    images = images.astype(np.float64)
    d = images - images.mean(axis=(1, 2), keepdims=True)
    h, w = d.shape[1:]
    si = (-1.0) ** np.arange(h)[:, None]
    sj = (-1.0) ** np.arange(w)[None, :]
    both, rows, cols = (d * si * sj).sum((1, 2)), (d * si).sum((1, 2)), (d * sj).sum((1, 2))
    energy = (d * d).sum((1, 2))
    share = np.where(energy > 0, (both ** 2 + rows ** 2 + cols ** 2) / (h * w * np.maximum(energy, 1e-300)), 0.0)
    return float(share.mean())


def sample_scores(logits):
    """adjoint::metrics::sample_scores: mean top-class confidence, entropy of predicted classes."""
    probs = torch.softmax(logits.double(), 1)
    confidence = float(probs.max(1).values.mean())
    counts = np.bincount(probs.argmax(1).numpy(), minlength=logits.shape[1])
    p = counts[counts > 0] / counts.sum()
    return confidence, max(0.0, float(-(p * np.log(p)).sum()))


def read_idx(path):
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(directory):
    for prefix in ("train", "t10k"):
        found = sorted(directory.glob(f"{prefix}-images*"))
        if found:
            images = read_idx(found[0])
            labels = read_idx(sorted(directory.glob(f"{prefix}-labels*"))[0])
            return torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0, torch.tensor(labels, dtype=torch.long)
    raise SystemExit(f"{directory}: no train-images* or t10k-images* file")


def train_classifier(model, images, labels, val_images, val_labels, epochs, batch_size, seed):
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    generator_ = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(images), generator=generator_)
        total = 0.0
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        with torch.no_grad():
            accuracy = float((model(val_images).argmax(1) == val_labels).double().mean())
        print(f"classifier epoch {epoch}: loss {total / len(images):.4f}, validation accuracy {accuracy:.4f}")
    return accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=pathlib.Path, required=True)
    parser.add_argument("--train-size", type=int, default=9000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--classifier-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--upsample", choices=("transposed", "resize"), default="transposed")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images, labels = load_mnist(args.data_dir)
    train, val = images[:args.train_size], images[args.train_size:]
    train_labels, val_labels = labels[:args.train_size], labels[args.train_size:]
    print(f"data: {args.data_dir}: {len(train)} training, {len(val)} validation images")

    judge = classifier(int(labels.max()) + 1)
    accuracy = train_classifier(judge, train, train_labels, val, val_labels, args.classifier_epochs,
                                64, args.seed)
    judge.eval()

    G, D = generator(args.latent, args.upsample), discriminator()
    opt_g = torch.optim.Adam(G.parameters(), args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), args.lr, betas=(0.5, 0.999))
    real_images = train * 2 - 1
    fixed = torch.randn(args.samples, args.latent)
    shuffle = torch.Generator().manual_seed(args.seed + 1)

    def score():
        G.eval()
        with torch.no_grad():
            samples = G(fixed)
            confidence, entropy = sample_scores(judge((samples + 1) / 2))
        G.train()
        return confidence, entropy, checkerboard_score(samples[:, 0].numpy())

    confidence, entropy, board = score()
    print(f"untrained: confidence {confidence:.3f}, class entropy {entropy:.3f}, checkerboard {board:.5f}")
    all_steps = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(real_images), generator=shuffle)
        steps, d_total, g_total, seen = [], 0.0, 0.0, 0
        for start in range(0, len(real_images), args.batch_size):
            real = real_images[order[start:start + args.batch_size]]
            n = len(real)
            z = torch.randn(n, args.latent)
            s0 = time.perf_counter()
            with torch.no_grad():
                fake = G(z)
            real_logits, fake_logits = D(real), D(fake)
            loss_d = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            fake_logits = D(G(z))
            loss_g = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            steps.append((time.perf_counter() - s0) * 1e3)
            d_total += loss_d.item() * n
            g_total += loss_g.item() * n
            seen += n
        all_steps += steps
        confidence, entropy, board = score()
        print(f"epoch {epoch:>3}: D {d_total / seen:.4f}  G {g_total / seen:.4f}  confidence {confidence:.3f}  "
              f"class entropy {entropy:.3f}  checkerboard {board:.5f}  step {statistics.median(steps):.1f} ms  "
              f"({time.perf_counter() - t0:.1f} s)")
    print(f"classifier validation accuracy {accuracy:.4f}; final confidence {confidence:.3f}, class entropy "
          f"{entropy:.3f} (ln 10 = {math.log(10):.3f}), checkerboard {board:.5f}; median step "
          f"{statistics.median(all_steps):.1f} ms")


if __name__ == "__main__":
    main()
