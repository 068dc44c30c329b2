"""PyTorch on CUDA running the GPU-machine workloads of issue 6 part 4, one line each in the
common format (`workload=<name> impl=torch-cuda <key>=<value> ...`), with TF32 off so that fp32
products are fp32 on both sides. Usage: python torch_cuda.py [--device cuda|cpu]
(`--device cpu` only checks the script on a machine without a GPU; it prints impl=torch-cpu)."""
import sys, time, torch

dev = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cuda"
impl = "torch-cuda" if dev == "cuda" else "torch-cpu"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.manual_seed(0)

def sync():
    if dev == "cuda":
        torch.cuda.synchronize()

def matmul(sizes):
    for n in sizes:
        a = torch.rand(n, n, device=dev); b = torch.rand(n, n, device=dev) / n
        for _ in range(3): a @ b
        sync(); reps = 10; t = time.perf_counter(); c = a
        for _ in range(reps): c = c @ b
        cs = c.double().sum().item(); dt = (time.perf_counter() - t) / reps
        print(f"workload=matmul impl={impl} n={n} ms={dt*1e3:.3f} gflops={2*n**3/dt/1e9:.2f} checksum={cs:.4f}", flush=True)

def mlp(bs):
    i, h, o = 784, 512, 10
    m = torch.nn.Sequential(torch.nn.Linear(i, h), torch.nn.ReLU(), torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, o)).to(dev)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = torch.rand(bs, i, device=dev); y = torch.randint(0, 10, (bs,), device=dev)
    def step():
        opt.zero_grad(); loss = torch.nn.functional.cross_entropy(m(x), y); loss.backward(); opt.step(); return loss
    for _ in range(5): step()
    sync(); steps = 30; t = time.perf_counter()
    for _ in range(steps): loss = step()
    l = loss.item(); dt = (time.perf_counter() - t) / steps
    print(f"workload=mlp_step impl={impl} batch={bs} ms={dt*1e3:.3f} samples_per_s={bs/dt:.0f} loss={l:.4f}", flush=True)

if __name__ == "__main__":
    matmul([256, 512, 1024, 2048, 4096] if dev == "cuda" else [256])
    mlp(4096 if dev == "cuda" else 256)
