"""PyTorch (CPU) running the main example's recipe, for PERFORMANCE.md: MLP 64-128-128-10 (ReLU)
on the bundled digits (pixels / 16), seeded 80/20 split, Adam lr 1e-3, batch 64, shuffled, 30
epochs. Prints `workload=digits impl=torch-cpu seconds=<training time> test_accuracy=<x>`.

    python benches/torch_digits.py [seed]
"""
import gzip
import os
import sys
import time

import torch
from torch import nn

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
torch.manual_seed(seed)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "digits.csv.gz")
rows = [list(map(float, l.split(","))) for l in gzip.open(path, "rt").read().splitlines() if l.strip()]
data = torch.tensor(rows)
x, y = data[:, :64] / 16.0, data[:, 64].long()
perm = torch.randperm(len(y))
n_train = len(y) * 4 // 5
tr, te = perm[:n_train], perm[n_train:]
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), 1e-3)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True)
t = time.perf_counter()
for epoch in range(30):
    for xb, yb in loader:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
seconds = time.perf_counter() - t
with torch.no_grad():
    acc = (model(x[te]).argmax(1) == y[te]).float().mean().item()
print(f"workload=digits impl=torch-cpu seconds={seconds:.2f} test_accuracy={acc:.4f}")
