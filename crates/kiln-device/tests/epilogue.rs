//! Matmul epilogues (epilogue.rs) on a real adapter: a product followed by a bias add and a
//! ReLU, or by a ReLU mask, in each operand layout the subgroup kernels read, on shapes that are
//! not multiples of their tiles. Values are checked against f64 arithmetic on the host; the
//! dispatch counts only where the adapter runs the subgroup kernels (a software adapter).
//! Skipped without an adapter unless KILN_REQUIRE_GPU=1.

mod common;

use common::{add, close, f32s, private_device, private_device_with, ramp, upload};
use kiln_device::kernels::{self, MatmulDesc};
use kiln_device::op::{BinaryOp, UnaryOp};
use kiln_device::{DeviceOptions, Fusion, GpuDevice};

/// How the product reads its operands.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// A [m, k], B [k, n].
    Nn,
    /// A [m, k], B stored [n, k] (a linear layer's weight).
    Nt,
    /// A stored [k, m] (a weight gradient's), B [k, n].
    Tn,
}

/// Operands of an m x k by k x n product stored in `layout`, the descriptor, and the product
/// in f64 (row-major m x n).
fn product(m: usize, k: usize, n: usize, layout: Layout) -> (Vec<f32>, Vec<f32>, MatmulDesc, Vec<f64>) {
    let a = ramp(m * k, 1.0);
    let b = ramp(k * n, 0.5).iter().map(|v| v + 0.01).collect::<Vec<_>>();
    // Element (i, kk) of op(A) and (kk, j) of op(B), and their strides.
    let (a_at, a_rs, a_cs): (Box<dyn Fn(usize, usize) -> f32>, _, _) = match layout {
        Layout::Tn => (Box::new(|i, kk| a[kk * m + i]), 1, m),
        _ => (Box::new(|i, kk| a[i * k + kk]), k, 1),
    };
    let (b_at, b_rs, b_cs): (Box<dyn Fn(usize, usize) -> f32>, _, _) = match layout {
        Layout::Nt => (Box::new(|kk, j| b[j * k + kk]), 1, k),
        _ => (Box::new(|kk, j| b[kk * n + j]), n, 1),
    };
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|kk| a_at(i, kk) as f64 * b_at(kk, j) as f64).sum();
        }
    }
    drop((a_at, b_at));
    let d = MatmulDesc { m, n, k, batch: 1, a_rs, a_cs, a_bs: 0, b_rs, b_cs, b_bs: 0 };
    (a, b, d, c)
}

/// A device of its own with epilogues on.
fn epilogue_device() -> Option<GpuDevice> {
    let d = private_device()?;
    assert!(!d.matmul_epilogues(), "off by default");
    drop(d);
    private_device_with(DeviceOptions { fusion: Fusion::WithEpilogues, ..Default::default() })
}

/// Dispatches recorded by `f`, after everything before it has run.
fn dispatches(d: &GpuDevice, f: impl FnOnce()) -> u64 {
    d.synchronize().unwrap();
    let before = d.dispatches();
    f();
    d.synchronize().unwrap();
    d.dispatches() - before
}

#[test]
fn bias_and_relu_run_in_the_matmul_in_every_layout() {
    let Some(d) = epilogue_device() else { return };
    let fused = d.row_matmul();
    // (m, k, n): past the 64-row and 64- or 32-column tiles, and a 16-column nt product.
    for (m, k, n, layout) in [
        (70, 36, 132, Layout::Nn),
        (70, 36, 40, Layout::Nn),
        (70, 36, 70, Layout::Nt),
        (70, 36, 10, Layout::Nt),
        (68, 36, 132, Layout::Tn),
    ] {
        let what = format!("{layout:?} {m}x{k}x{n}");
        let (a, b, desc, c) = product(m, k, n, layout);
        let bias = ramp(n, 1.0);
        let (a, b, bias_buf) = (upload(&d, &a), upload(&d, &b), upload(&d, &bias));
        let y_want: Vec<f64> = c.iter().enumerate().map(|(i, v)| v + bias[i % n] as f64).collect();
        let h_want: Vec<f64> = y_want.iter().map(|v| v.max(0.0)).collect();
        // The product kept (as autograd keeps it), the biased value and its ReLU.
        let mut out = None;
        let count = dispatches(&d, || {
            let prod = kernels::matmul(&d, &a, &b, &desc).unwrap();
            let y = kernels::binary(&d, BinaryOp::Add, &prod, &bias_buf, &[m, n], &[n, 1], &[0, 1]).unwrap();
            let h = kernels::unary(&d, UnaryOp::Relu, 0.0, &y, m * n).unwrap();
            out = Some((prod, y, h));
        });
        let (prod, y, h) = out.unwrap();
        close(&f32s(&d, &prod, m * n), &c, &format!("{what}: product"));
        close(&f32s(&d, &y, m * n), &y_want, &format!("{what}: product + bias"));
        close(&f32s(&d, &h, m * n), &h_want, &format!("{what}: relu"));
        if fused {
            assert_eq!(count, 1, "{what}");
        }
        // The product and the biased value dropped: only the ReLU is stored.
        let h = kernels::unary(
            &d,
            UnaryOp::Relu,
            0.0,
            &kernels::binary(
                &d,
                BinaryOp::Add,
                &kernels::matmul(&d, &a, &b, &desc).unwrap(),
                &bias_buf,
                &[m, n],
                &[n, 1],
                &[0, 1],
            )
            .unwrap(),
            m * n,
        )
        .unwrap();
        close(&f32s(&d, &h, m * n), &h_want, &format!("{what}: relu alone"));
    }
}

#[test]
fn relu_mask_runs_in_the_backward_matmul() {
    let Some(d) = epilogue_device() else { return };
    let (m, k, n) = (70, 36, 132);
    let (a, b, desc, c) = product(m, k, n, Layout::Nn);
    let x = ramp(m * n, 2.0);
    let (a, b, xb) = (upload(&d, &a), upload(&d, &b), upload(&d, &x));
    let want: Vec<f64> = c.iter().zip(&x).map(|(g, x)| if *x > 0.0 { *g } else { 0.0 }).collect();
    let mut out = None;
    let count = dispatches(&d, || {
        let g = kernels::matmul(&d, &a, &b, &desc).unwrap();
        out = Some(kernels::binary(&d, BinaryOp::ReluBackward, &g, &xb, &[m, n], &[n, 1], &[n, 1]).unwrap());
    });
    close(&f32s(&d, &out.unwrap(), m * n), &want, "relu mask");
    if d.row_matmul() {
        assert_eq!(count, 1);
    }
}

#[test]
fn operands_and_order_are_safe() {
    let Some(d) = epilogue_device() else { return };
    let rows = d.row_matmul();
    let (m, k, n) = (70, 36, 132);
    let (a0, b0, desc, c) = product(m, k, n, Layout::Nn);
    let b = upload(&d, &b0);
    // A dropped right after the matmul: the pool may hand its buffer to the add's output,
    // which the epilogue must not write while the product still reads A.
    let a = upload(&d, &a0);
    let prod = kernels::matmul(&d, &a, &b, &desc).unwrap();
    drop(a);
    let twice = kernels::binary(&d, BinaryOp::Add, &prod, &prod, &[m * n], &[1], &[1]).unwrap();
    close(&f32s(&d, &twice, m * n), &c.iter().map(|v| 2.0 * v).collect::<Vec<_>>(), "A's buffer reused");
    // The product read with A's own buffer as the other operand (bound twice).
    let sq = kernels::matmul(
        &d,
        &upload(&d, &a0[..k * k]),
        &upload(&d, &a0[..k * k]),
        &MatmulDesc { m: k, n: k, k, batch: 1, a_rs: k, a_cs: 1, a_bs: 0, b_rs: k, b_cs: 1, b_bs: 0 },
    );
    let sq = sq.unwrap();
    let sq_host = f32s(&d, &sq, k * k);
    let a2 = upload(&d, &a0[..k * k]);
    let p2 = kernels::matmul(
        &d,
        &a2,
        &a2,
        &MatmulDesc { m: k, n: k, k, batch: 1, a_rs: k, a_cs: 1, a_bs: 0, b_rs: k, b_cs: 1, b_bs: 0 },
    )
    .unwrap();
    let s = kernels::binary(&d, BinaryOp::Sub, &p2, &a2, &[k * k], &[1], &[1]).unwrap();
    let want: Vec<f64> = sq_host.iter().zip(&a0[..k * k]).map(|(p, a)| *p as f64 - *a as f64).collect();
    close(&f32s(&d, &s, k * k), &want, "A as the epilogue's operand");
    // An op that does not read the product closes the epilogue: the matmul and the add each
    // take a dispatch, and a product nobody reads takes none.
    let a = upload(&d, &a0);
    let one = kernels::fill(&d, 1.0, 5).unwrap();
    let mut kept = None;
    let count = dispatches(&d, || {
        let prod = kernels::matmul(&d, &a, &b, &desc).unwrap();
        let other = add(&d, &one, &one, 5);
        kept = Some((prod, other));
    });
    let (prod, other) = kept.unwrap();
    close(&f32s(&d, &prod, m * n), &c, "product before an unrelated op");
    close(&f32s(&d, &other, 5), &[2.0; 5], "the unrelated op");
    let unread = dispatches(&d, || drop(kernels::matmul(&d, &a, &b, &desc).unwrap()));
    if rows {
        assert_eq!(count, 2);
        assert_eq!(unread, 0);
    }
}
