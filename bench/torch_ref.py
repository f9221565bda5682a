#!/usr/bin/python3
"""torch_ref.py - the PyTorch side of bench/run: the same model, data,
batch size and measurements as bench/bench_hcr.c, printed as one JSON
object with the same keys (progress goes to stderr).

Model: Conv2d(1,32,3) ReLU MaxPool2d(2) Conv2d(32,64,3) ReLU MaxPool2d(2)
Flatten Linear(1600,128) ReLU Dropout(0.5) Linear(128,10); Glorot-uniform
weights, zero biases; Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-7);
cross-entropy loss; batch 128, shuffled every epoch.

Data: MNIST IDX .gz files read with gzip + numpy (no torchvision); training
on the first 54,000 training images (6,400 with --quick), as bench_hcr
does. Pixels are scaled to [0, 1] batch by batch inside the timed loops,
as hcr does.

Measures: training images/s and seconds per epoch (median over epochs),
test accuracy, inference images/s at batch 1 on 1 thread (model.eval(),
torch.no_grad(), softmax included, median of --repeat runs) and at batch
1000 on --threads threads, the forward/loss/backward/optimizer split of
one training step of 128 images and the forward time of each layer (median of
20 steps), and the process's peak RSS.

Run with Debian's /usr/bin/python3 (python3-torch); pyenv's python3 has no
torch. Usage: torch_ref.py [--data DIR] [--threads N] [--epochs N]
[--repeat N] [--quick]
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
from torch import nn

BATCH = 128
TRAIN_IMAGES = 54000
QUICK_TRAIN_IMAGES = 6400
BATCH1_IMAGES = 2000
QUICK_BATCH1_IMAGES = 500
BIG_BATCH = 1000
LAYER_REPS = 20
QUICK_LAYER_REPS = 5


def log(msg):
    print("torch_ref: " + msg, file=sys.stderr, flush=True)


def read_idx(path):
    """An IDX file (raw or .gz) as a numpy uint8 array of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = bytearray(f.read())  # writable, so torch.from_numpy does not warn
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = magic & 0xFF
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(directory, prefix):
    def find(kind):
        for name in ("%s-%s.gz" % (prefix, kind), "%s-%s" % (prefix, kind)):
            p = os.path.join(directory, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError("%s/%s-%s[.gz]" % (directory, prefix, kind))
    images = read_idx(find("images-idx3-ubyte"))
    labels = read_idx(find("labels-idx1-ubyte"))
    return images, labels.astype(np.int64)


def build_model():
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10))
    for mod in model:
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    return model


# hcr's layer names, each with the torch modules it stands for (hcr fuses
# ReLU into the convolution and dense layers).
LAYER_GROUPS = [("conv2d", 0, 2), ("max_pooling2d", 2, 3), ("conv2d_1", 3, 5),
                ("max_pooling2d_1", 5, 6), ("flatten", 6, 7), ("dense", 7, 9),
                ("dropout", 9, 10), ("dense_1", 10, 11)]


def to_input(pixels):
    """uint8 N x 28 x 28 -> float N x 1 x 28 x 28 in [0, 1]."""
    return torch.from_numpy(pixels).unsqueeze(1).float().div_(255.0)


def train_epochs(model, opt, images, labels, epochs):
    loss_fn = nn.CrossEntropyLoss()
    n = len(images)
    seconds, last = [], (0.0, 0.0)
    model.train()
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n).numpy()
        loss_sum, correct = 0.0, 0
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            x = to_input(images[idx])
            y = torch.from_numpy(labels[idx])
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
        seconds.append(time.perf_counter() - t0)
        last = (loss_sum / n, correct / n)
    return seconds, last


def accuracy(model, images, labels):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), BIG_BATCH):
            out = model(to_input(images[start:start + BIG_BATCH]))
            correct += (out.argmax(1).numpy() == labels[start:start + BIG_BATCH]).sum()
    return correct / len(images)


def predict_ips(model, images, count, per_call, repeat):
    """Images/s of softmax(model(x)) on count images, per_call at a time."""
    model.eval()
    runs = []
    with torch.no_grad():
        torch.softmax(model(to_input(images[:per_call])), 1)  # warm-up
        for _ in range(repeat):
            t0 = time.perf_counter()
            for start in range(0, count - per_call + 1, per_call):
                torch.softmax(model(to_input(images[start:start + per_call])), 1)
            runs.append(count / (time.perf_counter() - t0))
    return statistics.median(runs)


def step_breakdown(model, opt, images, labels, reps, threads):
    """Per-layer forward times and the forward/backward/optimizer split of
    one training step on the first BATCH images."""
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    x = to_input(images[:BATCH])
    y = torch.from_numpy(labels[:BATCH])
    layer_ms = {name: [] for name, _, _ in LAYER_GROUPS}
    fwd, lss, bwd, step, total = [], [], [], [], []
    warmup = 2
    for r in range(reps + warmup):
        t_start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        h = x
        for name, lo, hi in LAYER_GROUPS:
            t0 = time.perf_counter()
            for mod in model[lo:hi]:
                h = mod(h)
            if r >= warmup:
                layer_ms[name].append((time.perf_counter() - t0) * 1e3)
        t_loss = time.perf_counter()
        loss = loss_fn(h, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if r >= warmup:
            fwd.append((t_loss - t_start) * 1e3)
            lss.append((t1 - t_loss) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            step.append((t3 - t2) * 1e3)
            total.append((t3 - t_start) * 1e3)
    med = statistics.median
    layers = [{"name": name, "forward_ms": round(med(layer_ms[name]), 4)}
              for name, _, _ in LAYER_GROUPS if name != "flatten"]
    split = {"batch": BATCH, "threads": threads, "reps": reps,
             "forward": round(med(fwd), 4), "loss": round(med(lss), 4),
             "backward": round(med(bwd), 4),
             "optimizer": round(med(step), 4), "total": round(med(total), 4)}
    return layers, split


def backend_description():
    """What torch computes with: its build's BLAS setting, the BLAS library
    actually mapped into the process, oneDNN's version, the CPU capability."""
    show = torch.__config__.show()
    parts = []
    for line in show.splitlines():
        line = line.strip(" -")
        if line.startswith(("Intel(R) MKL-DNN", "oneDNN", "CPU capability")):
            parts.append(line)
        if "BLAS_INFO=" in line:
            parts.append(line[line.index("BLAS_INFO="):].split(",")[0])
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({l.split()[-1] for l in f if "blas" in l.split()[-1].lower()})
        parts += [os.path.realpath(l) for l in libs]
    except OSError:
        pass
    return ", ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data/mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.threads < 1 or a.epochs < 1 or a.repeat < 1:
        ap.error("--threads, --epochs and --repeat must be positive")
    train_count = QUICK_TRAIN_IMAGES if a.quick else TRAIN_IMAGES
    batch1_count = QUICK_BATCH1_IMAGES if a.quick else BATCH1_IMAGES
    layer_reps = QUICK_LAYER_REPS if a.quick else LAYER_REPS

    torch.manual_seed(42)
    torch.set_num_threads(a.threads)
    log("loading %s" % a.data)
    train_x, train_y = load(a.data, "train")
    test_x, test_y = load(a.data, "t10k")
    train_x, train_y = train_x[:train_count], train_y[:train_count]

    model = build_model()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    log("training %d epoch(s) on %d images, %d thread(s)" % (a.epochs, train_count, a.threads))
    seconds, (train_loss, train_acc) = train_epochs(model, opt, train_x, train_y, a.epochs)
    test_acc = accuracy(model, test_x, test_y)

    log("inference")
    torch.set_num_threads(1)
    ips1 = predict_ips(model, test_x, batch1_count, 1, a.repeat)
    torch.set_num_threads(a.threads)
    ips1000 = predict_ips(model, test_x, BIG_BATCH, BIG_BATCH, a.repeat)

    log("per-layer timing")
    layers, split = step_breakdown(model, opt, train_x, train_y, layer_reps, a.threads)

    result = {
        "impl": "pytorch",
        "version": torch.__version__,
        "spec": "conv32-pool-conv64-pool-dense128-drop0.5",
        "params": params,
        "blas": backend_description(),
        "threads": a.threads,
        "batch_size": BATCH,
        "quick": a.quick,
        "train_images": train_count,
        "epochs": a.epochs,
        "train_images_per_s": round(statistics.median(train_count / s for s in seconds), 2),
        "train_seconds_per_epoch": round(statistics.median(seconds), 4),
        "train_epoch_seconds": [round(s, 4) for s in seconds],
        "train_loss": round(train_loss, 5),
        "train_accuracy": round(train_acc, 5),
        "test_accuracy": round(float(test_acc), 5),
        "infer_batch1_images": batch1_count,
        "infer_batch1_threads": 1,
        "infer_batch1_images_per_s": round(ips1, 2),
        "infer_batch1000_threads": a.threads,
        "infer_batch1000_images_per_s": round(ips1000, 2),
        "repeat": a.repeat,
        "layers": layers,
        "step_ms": split,
        # ru_maxrss is in KiB on Linux
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 2),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
