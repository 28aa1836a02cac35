#!/usr/bin/env python3
"""Runs `lenet-gpu bench` and the PyTorch peer side by side and prints one markdown table.

    python3 bench/compare.py --batch 16,256 --steps 50 --threads 2
    python3 bench/compare.py --torch-device cuda --batch 256 --steps 500   # on a CUDA machine

Every row is measured in this one run, on this machine, one after the other; the ratio
columns divide by the PyTorch CPU row of the same batch size. The PyTorch script needs
torch and numpy (`pip install torch numpy`); --python picks the interpreter that has them.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def json_lines(cmd, env):
    print("$ " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lenet", default=str(REPO / "target" / "release" / "lenet-gpu"))
    p.add_argument("--python", default=sys.executable, help="interpreter with torch installed")
    p.add_argument("--backend", default="gpu,cpu,cpu-ref", help="lenet-gpu backends")
    p.add_argument("--batch", default="16,256")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--torch-device", default="cpu", help="cpu, cuda, or cpu,cuda")
    a = p.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    rows = json_lines([a.lenet, "bench", "--json", "--backend", a.backend, "--batch", a.batch,
                       "--steps", str(a.steps)], env)
    for dev in a.torch_device.split(","):
        rows += json_lines([a.python, str(REPO / "bench" / "pytorch_lenet5.py"), "--json",
                            "--device", dev, "--batch", a.batch, "--steps", str(a.steps),
                            "--threads", str(a.threads)], env)
    peer = {r["batch"]: r for r in rows if r["backend"].startswith("pytorch") and "cpu" in r["backend"]}
    print(f"Measured {date.today()} on {cpu_name()} ({os.cpu_count()} logical CPUs), "
          f"{a.threads} threads, {a.steps} timed steps per row.\n")
    print("| backend | batch | train samples/s | s per 60k epoch | eval samples/s | train vs PyTorch CPU | eval vs PyTorch CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ref = peer.get(r["batch"])
        ratio = lambda k: f"{r[k] / ref[k]:.2f}x" if ref else "-"
        print(f"| {r['backend']} | {r['batch']} | {r['train_samples_per_s']:,.0f} | {r['epoch_seconds']:.1f} | "
              f"{r['eval_samples_per_s']:,.0f} | {ratio('train_samples_per_s')} | {ratio('eval_samples_per_s')} |")


if __name__ == "__main__":
    main()
