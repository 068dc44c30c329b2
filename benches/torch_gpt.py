"""PyTorch (CPU) running train_gpt's recipe, for PERFORMANCE.md: nanoGPT's GPT (the fixture
script's model, tests/fixtures/make_nanogpt_fixture.py) with the small shakespeare_char CPU
configuration: 4 layers, 4 heads, 128 wide, block 64, batch 12, no biases, no dropout, tied head;
AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on 2-D weights, 100 warm-up iterations then
cosine decay to 1e-4 at 2000, gradient clipping at 1.0, 2000 iterations, the validation loss the
mean over 200 random validation batches every 500 iterations and at the end (as the example).
Prints `workload=train_gpt impl=torch-cpu seconds=<training time, evaluations included> val_loss=<x>`.

    python benches/torch_gpt.py [seed]
"""
import gzip
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from make_nanogpt_fixture import GPT  # noqa: E402

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
torch.manual_seed(seed)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "shakespeare.txt.gz")
text = gzip.open(path, "rt").read()
chars = sorted(set(text))
lookup = {c: i for i, c in enumerate(chars)}
ids = torch.tensor([lookup[c] for c in text], dtype=torch.long)
n = len(ids) * 9 // 10
train, val = ids[:n], ids[n:]
block, batch, iters = 64, 12, 2000
cfg = dict(block_size=block, vocab_size=len(chars), n_layer=4, n_head=4, n_embd=128, bias=False)
model = GPT(cfg)
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.99), eps=1e-8)


def get_batch(data):
    ix = torch.randint(len(data) - block, (batch,))
    x = torch.stack([data[i:i + block] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + block] for i in ix])
    return x, y


def get_lr(it, lr=1e-3, min_lr=1e-4, warmup=100, decay_iters=2000):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


@torch.no_grad()
def estimate_loss(data, k=200):
    model.eval()
    losses = [model(*get_batch(data))[1].item() for _ in range(k)]
    model.train()
    return sum(losses) / k


t = time.perf_counter()
val_loss = float("nan")
for it in range(iters):
    for g in opt.param_groups:
        g["lr"] = get_lr(it)
    x, y = get_batch(train)
    _, loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if (it + 1) % 500 == 0 or it + 1 == iters:
        val_loss = estimate_loss(val)
        print(f"iter {it + 1:5}  val loss {val_loss:.4f}", flush=True)
print(f"workload=train_gpt impl=torch-cpu seconds={time.perf_counter() - t:.2f} val_loss={val_loss:.4f}")
