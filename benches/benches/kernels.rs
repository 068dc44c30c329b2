//! criterion benchmarks of the kernel families on the GPU device (the software adapter where
//! there is no GPU): matmul shapes including the MLP's and the transposed-operand variants,
//! elementwise (alone and a fused chain), reductions, softmax, the fused cross-entropy and the
//! fused Adam update. Every measured closure ends with `synchronize()`, so the clock stops when
//! the GPU is done, and returns its result: an elementwise result dropped before the sync is
//! never computed (see kiln-device's fusion), so it must outlive the sync.
//!
//! `cargo bench -p kiln-benches --bench kernels`

use criterion::{Criterion, criterion_group, criterion_main};
use kiln::nn::functional::cross_entropy;
use kiln::optim::{Adam, AdamConfig, Optimizer};
use kiln::{Device, Parameter, Tensor};

fn dev() -> Device {
    Device::gpu().unwrap_or(Device::Cpu)
}

fn bench(c: &mut Criterion) {
    let d = dev();
    let sync = |d: &Device| d.synchronize().unwrap();
    kiln::manual_seed(0);
    let mut g = c.benchmark_group(format!("kernels on {}", d.name()));
    g.sample_size(10);
    for (m, k, n) in [(256usize, 784usize, 512usize), (256, 512, 512), (1024, 1024, 1024), (65, 129, 33)] {
        let a = Tensor::rand(&[m, k], &d).unwrap();
        let b = Tensor::rand(&[k, n], &d).unwrap();
        let bt = Tensor::rand(&[n, k], &d).unwrap();
        g.bench_function(format!("matmul {m}x{k}x{n}"), |bch| {
            bch.iter(|| {
                let r = a.matmul(&b).unwrap();
                sync(&d);
                r
            })
        });
        g.bench_function(format!("linear (B transposed) {m}x{k}x{n}"), |bch| {
            bch.iter(|| {
                let r = Tensor::linear(&a, &bt, None).unwrap();
                sync(&d);
                r
            })
        });
    }
    let x = Tensor::rand(&[256, 1024], &d).unwrap();
    let y = Tensor::rand(&[1024], &d).unwrap();
    g.bench_function("add broadcast 256x1024", |bch| {
        bch.iter(|| {
            let r = x.add(&y).unwrap();
            sync(&d);
            r
        })
    });
    g.bench_function("exp 256x1024", |bch| {
        bch.iter(|| {
            let r = x.exp().unwrap();
            sync(&d);
            r
        })
    });
    // Eight elementwise ops: one generated kernel (with KILN_FUSE=0, eight dispatches).
    g.bench_function("chain of 8 elementwise ops 256x1024", |bch| {
        bch.iter(|| {
            let r = x
                .mul_scalar(2.0)
                .and_then(|t| t.add(&y))
                .and_then(|t| t.relu())
                .and_then(|t| t.mul(&x))
                .and_then(|t| t.add_scalar(1.0))
                .and_then(|t| t.tanh())
                .and_then(|t| t.sub(&x))
                .and_then(|t| t.sigmoid())
                .unwrap();
            sync(&d);
            r
        })
    });
    g.bench_function("sum dim 0 of 256x1024", |bch| {
        bch.iter(|| {
            let r = x.sum(0usize, false).unwrap();
            sync(&d);
            r
        })
    });
    g.bench_function("sum_all 256x1024", |bch| {
        bch.iter(|| {
            let r = x.sum_all().unwrap();
            sync(&d);
            r
        })
    });
    g.bench_function("softmax dim 1 of 256x1024", |bch| {
        bch.iter(|| {
            let r = x.softmax(1usize).unwrap();
            sync(&d);
            r
        })
    });
    let logits = Tensor::rand(&[256, 10], &d).unwrap().set_requires_grad(true);
    let labels = Tensor::from_labels(&(0..256u32).map(|i| i % 10).collect::<Vec<_>>(), &d).unwrap();
    g.bench_function("cross_entropy forward+backward 256x10", |bch| {
        bch.iter(|| {
            cross_entropy(&logits, &labels).unwrap().backward().unwrap();
            sync(&d)
        })
    });
    let p = Parameter::new(Tensor::rand(&[512, 784], &d).unwrap());
    p.set_grad(Some(Tensor::rand(&[512, 784], &d).unwrap()));
    let mut opt = Adam::new(vec![("w".into(), p.clone())], AdamConfig::default()).unwrap();
    g.bench_function("adam step 512x784", |bch| {
        bch.iter(|| {
            opt.step().unwrap();
            sync(&d)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
