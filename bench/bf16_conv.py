"""Where torch's bfloat16 CPU convolution is not deterministic: the weight gradient of a strided convolution whose
input map is tiny. Each case runs the same forward and backward three times with other memory scribbled on in
between, and prints the cases whose results differ, and the rule the toolkit's Autocast guard uses
(toolkit/train/callbacks.py): such a convolution trains in fp32 when min(h, w) <= max(kernel, stride).

    python bench/bf16_conv.py
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")


def scribble():
    """Fill freed memory with large numbers, so that a kernel reading memory it never wrote sees them."""
    for _ in range(20):
        t = torch.empty(2 ** 20).uniform_(-1e30, 1e30)
        del t


def deterministic(k: int, s: int, h: int, w: int, channels_last: bool = False, cin: int = 64) -> tuple[bool, bool, bool]:
    """(forward, input gradient, weight gradient) each equal over three tries, under bf16 autocast on the CPU."""
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, 64, k, s, k // 2, bias=False)
    x0 = torch.randn(16, cin, h, w)
    if channels_last:
        x0, conv = x0.contiguous(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    tries = []
    for _ in range(3):
        scribble()
        x = x0.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        y.float().sum().backward()
        tries.append((y.float().detach().clone(), x.grad.clone(), conv.weight.grad.clone()))
        conv.zero_grad()
    return tuple(all(torch.equal(tries[0][i], t[i]) for t in tries[1:]) for i in range(3))


def main():
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    print("| kernel | stride | input h x w | forward | input grad | weight grad | guarded (fp32) |")
    print("|---:|---:|---:|:---|:---|:---|:---|")
    flagged = missed = 0
    for k in (1, 3, 5, 7):
        for s in (2, 3, 4):
            for h in range(1, 9):
                for w in (h, h + 1):
                    ok = deterministic(k, s, h, w)
                    guarded = min(h, w) <= max(k, s)
                    missed += not all(ok) and not guarded
                    if not all(ok):
                        flagged += 1
                        print(f"| {k} | {s} | {h} x {w} | {'same' if ok[0] else 'DIFFERS'} | "
                              f"{'same' if ok[1] else 'DIFFERS'} | {'same' if ok[2] else 'DIFFERS'} | "
                              f"{'yes' if guarded else 'NO'} |", flush=True)
    print(f"\n{flagged} case(s) not deterministic, {missed} of them outside the guard's rule.")


if __name__ == "__main__":
    main()
