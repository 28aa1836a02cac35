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


def machine_sgemm(python, threads, env):
    """GFLOP/s of a 2048x2048 f32 matrix product through PyTorch on `threads` threads: what
    the machine's cores give a tuned kernel, so each row can be read as a fraction of it."""
    code = (
        "import time, torch\n"
        f"torch.set_num_threads({threads})\n"
        "a = torch.randn(2048, 2048); b = torch.randn(2048, 2048); a @ b\n"
        "best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))\n"
        "print(2 * 2048 ** 3 / best / 1e9)\n"
    )
    try:
        out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.CalledProcessError, ValueError, IndexError, FileNotFoundError):
        return None


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
    # The same arithmetic per pattern for every row (lenet-gpu's count from the layer shapes).
    flop = next((r["train_flop_per_pattern"] for r in rows if "train_flop_per_pattern" in r), None)
    sgemm = machine_sgemm(a.python, a.threads, env)
    print(f"Measured {date.today()} on {cpu_name()} ({os.cpu_count()} logical CPUs), "
          f"{a.threads} threads, {a.steps} timed steps per row.\n")
    if sgemm:
        print(f"Machine: PyTorch's own 2048x2048 sgemm on {a.threads} threads reaches {sgemm:.0f} GFLOP/s "
              f"(best of 5); the training arithmetic is {flop / 1e6:.2f} MFLOP per pattern.\n")
    print("| backend | batch | train samples/s | train GFLOP/s | of sgemm | s per 60k epoch | eval samples/s | train vs PyTorch CPU | eval vs PyTorch CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ref = peer.get(r["batch"])
        ratio = lambda k: f"{r[k] / ref[k]:.2f}x" if ref else "-"
        gf = r["train_samples_per_s"] * flop / 1e9 if flop else float("nan")
        frac = f"{gf / sgemm:.0%}" if sgemm else "-"
        print(f"| {r['backend']} | {r['batch']} | {r['train_samples_per_s']:,.0f} | {gf:.1f} | {frac} | "
              f"{r['epoch_seconds']:.1f} | {r['eval_samples_per_s']:,.0f} | {ratio('train_samples_per_s')} | "
              f"{ratio('eval_samples_per_s')} |")


if __name__ == "__main__":
    main()
