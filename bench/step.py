"""One training step of xresnet18 (64 px, bs 64, synthetic batches, Adam) in fp32, bf16 autocast, channels_last and
both: median of 10 steps per setting, the settings alternating, as ratios to fp32 (what `channels_last=auto` and
`precision=auto` were decided from on the CPU).

    python bench/step.py
"""
import warnings
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
import statistics as st
import time

import torch
from fastai.vision.models.xresnet import xresnet18
torch.manual_seed(0)
def make(cl):
    m = xresnet18(n_out=10)
    if cl: m = m.to(memory_format=torch.channels_last)
    return m, torch.optim.Adam(m.parameters(), 1e-3)
x = torch.randn(64, 3, 64, 64); y = torch.randint(0, 10, (64,))
cfg = {"fp32": (False, False), "bf16": (True, False), "cl": (False, True), "bf16+cl": (True, True)}
models = {k: make(cl) for k, (b, cl) in cfg.items()}
def step(k):
    b, cl = cfg[k]; m, opt = models[k]
    xx = x.contiguous(memory_format=torch.channels_last) if cl else x
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=b):
        loss = torch.nn.functional.cross_entropy(m(xx).float(), y)
    loss.backward(); opt.step(); opt.zero_grad()
    return time.perf_counter() - t
for k in cfg: step(k); step(k)
ts = {k: [] for k in cfg}
for r in range(10):
    for k in cfg: ts[k].append(step(k))
base = st.median(ts["fp32"])
for k in cfg: print(f"{k:8s} {st.median(ts[k])*1000:7.1f} ms  {st.median(ts[k])/base:.2f}x")
