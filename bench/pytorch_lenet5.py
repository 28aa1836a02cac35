#!/usr/bin/env python3
"""The peer of `lenet-gpu bench`: the same LeNet-5 in PyTorch, timed the same way.

Same network as lenet-gpu (docs/design.md section 1): 32x32 padded input scaled to
[-0.1, 1.175]; C1 5x5 conv; S2 trainable subsampling (coefficient x 2x2 sum + bias);
C3 5x5 conv restricted to LeCun's connection table (a masked 6->16 convolution); S4; C5
(16->120, 5x5); F6 120->84; every layer squashed by 1.7159 tanh(2a/3); RBF output with
the fixed centres of data/rbf_centers.txt; the MAP criterion (j = 10) summed over the
batch; initial weights uniform in +-2.4/F. A training step is forward, backward and an
element-wise update (plain SGD). Evaluation classifies the 10,000 test images.

    python3 bench/pytorch_lenet5.py --batch 16,256 --steps 50 --threads 2
    python3 bench/pytorch_lenet5.py --device cuda --batch 256 --steps 500

It prints samples/s for training and evaluation and seconds per 60,000-image epoch, one
line per batch size (or JSON lines with --json), like `lenet-gpu bench`.
"""

import argparse
import gzip
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent

C3_TABLE = [
    [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 0], [5, 0, 1],
    [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 0], [4, 5, 0, 1], [5, 0, 1, 2],
    [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], [0, 1, 2, 3, 4, 5],
]
MAP_J = 10.0  # as lenet-gpu's default criterion (train::DEFAULT_MAP_J)


def read_idx(path):
    """An IDX file (plain or .gz) as a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not a u8 IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(folder, stem):
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    raise SystemExit(f"{folder}: no {stem}[.gz]; pass --data or set LENET_DATA")


def load(folder):
    out = []
    for split in ("train", "t10k"):
        images = read_idx(find(folder, f"{split}-images-idx3-ubyte"))
        labels = read_idx(find(folder, f"{split}-labels-idx1-ubyte"))
        x = torch.full((len(images), 1, 32, 32), -0.1)
        x[:, 0, 2:30, 2:30] = torch.from_numpy(images.astype(np.float32)) * (1.275 / 255.0) - 0.1
        out.append((x, torch.from_numpy(labels.astype(np.int64))))
    return out


def rbf_centers():
    # As build.rs reads it: comment lines start with "# ", a picture row is 7 of '#' / '.'.
    lines = (REPO / "data" / "rbf_centers.txt").read_text().splitlines()
    rows = [l.strip() for l in lines if l.strip() and not l.startswith("# ") and not l.startswith("digit")]
    assert len(rows) == 120, "data/rbf_centers.txt: expected 10 pictures of 12 rows"
    flat = [1.0 if c == "#" else -1.0 for r in rows for c in r]
    return torch.tensor(flat).reshape(10, 84)


def squash(a):
    return 1.7159 * torch.tanh(a * (2.0 / 3.0))


class LeNet5(torch.nn.Module):
    def __init__(self):
        super().__init__()

        def u(shape, fan):
            return torch.nn.Parameter((torch.rand(shape) * 2 - 1) * (2.4 / fan))

        self.c1_w, self.c1_b = u((6, 1, 5, 5), 25), u((6,), 25)
        self.s2_w, self.s2_b = u((6,), 4), u((6,), 4)
        mask = torch.zeros(16, 6, 1, 1)
        fan = torch.zeros(16)
        for o, ins in enumerate(C3_TABLE):
            mask[o, ins] = 1.0
            fan[o] = 25 * len(ins)
        self.register_buffer("c3_mask", mask)
        self.c3_w = torch.nn.Parameter((torch.rand(16, 6, 5, 5) * 2 - 1) * (2.4 / fan).view(16, 1, 1, 1) * mask)
        self.c3_b = torch.nn.Parameter((torch.rand(16) * 2 - 1) * (2.4 / fan))
        self.s4_w, self.s4_b = u((16,), 4), u((16,), 4)
        self.c5_w, self.c5_b = u((120, 16, 5, 5), 400), u((120,), 400)
        self.f6_w, self.f6_b = u((84, 120), 120), u((84,), 120)
        self.register_buffer("centers", rbf_centers())

    @staticmethod
    def subsample(x, w, b):
        s = F.avg_pool2d(x, 2) * 4.0  # the sum of each 2x2 block
        return squash(s * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1))

    def forward(self, x):
        x = squash(F.conv2d(x, self.c1_w, self.c1_b))
        x = self.subsample(x, self.s2_w, self.s2_b)
        x = squash(F.conv2d(x, self.c3_w * self.c3_mask, self.c3_b))
        x = self.subsample(x, self.s4_w, self.s4_b)
        x = squash(F.conv2d(x, self.c5_w, self.c5_b)).flatten(1)
        x = squash(F.linear(x, self.f6_w, self.f6_b))
        # RBF: y_i = sum_j (x_j - c_ij)^2
        return ((x.unsqueeze(1) - self.centers.unsqueeze(0)) ** 2).sum(-1)


def map_loss(y, labels):
    """The MAP criterion, summed over the batch: y_D + ln(e^-j + sum_i e^-y_i)."""
    yd = y.gather(1, labels.view(-1, 1)).squeeze(1)
    j = torch.full_like(yd, -MAP_J).view(-1, 1)
    return (yd + torch.logsumexp(torch.cat([j, -y], dim=1), dim=1)).sum()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(model, opt, train, test, batch, steps, warmup, device, eval_batch):
    x_train, y_train = train
    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(len(x_train), generator=g)
    need = (warmup + steps) * batch
    idx = idx.repeat(need // len(idx) + 1)[:need]
    batches = [(x_train[idx[i:i + batch]].to(device), y_train[idx[i:i + batch]].to(device))
               for i in range(0, need, batch)]

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = map_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for x, y in batches[:warmup]:
        step(x, y)
    sync(device)
    t = time.perf_counter()
    for x, y in batches[warmup:]:
        loss = step(x, y)
    sync(device)
    train_s = time.perf_counter() - t
    if not torch.isfinite(loss):
        raise SystemExit("the loss became non-finite")

    x_test, y_test = test[0].to(device), test[1].to(device)

    def evaluate():
        errors = 0
        with torch.inference_mode():
            for i in range(0, len(x_test), eval_batch):
                pred = model(x_test[i:i + eval_batch]).argmin(1)
                errors += int((pred != y_test[i:i + eval_batch]).sum())
        return errors

    evaluate()  # warm-up
    # As lenet-gpu bench does: the median of 5 timed passes over the test set.
    times = []
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        errors = evaluate()
        sync(device)
        times.append(time.perf_counter() - t)
    eval_s = sorted(times)[2]
    rate = steps * batch / train_s
    return {
        "backend": f"pytorch {torch.__version__} {device.type}"
        + (f" ({torch.get_num_threads()} threads)" if device.type == "cpu" else f" ({torch.cuda.get_device_name()})"),
        "batch": batch,
        "train_samples_per_s": rate,
        "epoch_seconds": 60000 / rate,
        "eval_samples_per_s": len(x_test) / eval_s,
        "eval_error": errors / len(x_test),
        "steps": steps,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("LENET_DATA", str(REPO / "data" / "mnist")))
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (torch.set_num_threads)")
    p.add_argument("--batch", default="16,256", help="batch sizes, comma-separated")
    p.add_argument("--steps", type=int, default=50, help="timed training steps per batch size")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    p.add_argument("--eval-batch", type=int, default=256, help="patterns per evaluation batch")
    p.add_argument("--json", action="store_true", help="one JSON object per batch size")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    device = torch.device(a.device)
    train, test = load(Path(a.data))
    if not a.json:
        print(f"{len(train[0])} training, {len(test[0])} test images; {a.steps} timed steps after {a.warmup} warm-up")
        print(f"{'backend':<40} {'batch':>5} {'train/s':>10} {'epoch s':>8} {'eval/s':>10} {'eval err':>8}")
    for batch in [int(b) for b in a.batch.split(",")]:
        model = LeNet5().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=1e-5)
        r = bench(model, opt, train, test, batch, a.steps, a.warmup, device, a.eval_batch)
        if a.json:
            print(json.dumps(r))
        else:
            print(f"{r['backend']:<40} {batch:>5} {r['train_samples_per_s']:>10.0f} {r['epoch_seconds']:>8.2f} "
                  f"{r['eval_samples_per_s']:>10.0f} {100 * r['eval_error']:>7.2f}%")


if __name__ == "__main__":
    main()
