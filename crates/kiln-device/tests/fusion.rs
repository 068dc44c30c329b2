//! Elementwise fusion (src/fuse/) on a real adapter: how many dispatches chains take, and that
//! fusion keeps results and recording order exact where buffers are dropped, reused, read,
//! overwritten in place or more numerous than a kernel's bindings. Values are checked against
//! f64 arithmetic on the host. Skipped without an adapter unless KILN_REQUIRE_GPU=1.

mod common;

use common::{add, close, f32s, private_device, ramp, upload};
use kiln_device::GpuBuffer;
use kiln_device::kernels;
use kiln_device::op::{BinaryOp, UnaryOp};

#[test]
fn chains_take_one_dispatch_per_kernel_and_dropped_results_none() {
    let Some(d) = private_device() else { return };
    for n in [1024usize, 1001] {
        let x0 = ramp(n, 2.0);
        let x = upload(&d, &x0);
        let one = kernels::fill(&d, 1.0, n).unwrap();
        d.synchronize().unwrap();
        let before = d.dispatches();
        // 100 chained adds, each result dropped as the next is made: ceil(100 / 28) kernels.
        let mut y = add(&d, &x, &one, n);
        for _ in 1..100 {
            y = add(&d, &y, &one, n);
        }
        close(&f32s(&d, &y, n), &x0.iter().map(|&v| v as f64 + 100.0).collect::<Vec<_>>(), "100 adds");
        assert_eq!(d.dispatches() - before, 4, "n={n}");
        // A chain whose results are all dropped before anything reads the batch records nothing.
        let before = d.dispatches();
        drop(kernels::unary(&d, UnaryOp::Exp, 0.0, &add(&d, &x, &one, n), n).unwrap());
        d.synchronize().unwrap();
        assert_eq!(d.dispatches(), before, "n={n}");
        // One op alone records its own kernel.
        let z = kernels::unary(&d, UnaryOp::Neg, 0.0, &x, n).unwrap();
        close(&f32s(&d, &z, n), &x0.iter().map(|&v| -(v as f64)).collect::<Vec<_>>(), "neg");
        assert_eq!(d.dispatches(), before + 1, "n={n}");
    }
}

#[test]
fn every_kept_result_is_stored_and_more_than_the_bindings_split_the_chain() {
    let Some(d) = private_device() else { return };
    let n = 515;
    let x0 = ramp(n, 3.0);
    let x = upload(&d, &x0);
    // 40 results, all kept: more live outputs than any kernel binds, so the chain splits.
    let before = d.dispatches();
    let mut kept = vec![kernels::unary(&d, UnaryOp::Tanh, 0.0, &x, n).unwrap()];
    let mut want = vec![x0.iter().map(|&v| (v as f64).tanh()).collect::<Vec<f64>>()];
    for k in 1..40 {
        let prev = kept.last().unwrap();
        let (next, w): (GpuBuffer, Vec<f64>) = if k % 2 == 0 {
            let r = kernels::binary(&d, BinaryOp::Mul, prev, &x, &[n], &[1], &[1]).unwrap();
            (r, want[k - 1].iter().zip(&x0).map(|(a, &b)| a * b as f64).collect())
        } else {
            let r = kernels::unary(&d, UnaryOp::AddScalar, 0.25 * k as f32, prev, n).unwrap();
            (r, want[k - 1].iter().map(|a| a + 0.25 * k as f64).collect())
        };
        kept.push(next);
        want.push(w);
    }
    for (k, (b, w)) in kept.iter().zip(&want).enumerate() {
        close(&f32s(&d, b, n), w, &format!("result {k}"));
    }
    let used = d.dispatches() - before;
    assert!((3..40).contains(&used), "{used} dispatches for 40 kept results");
}

#[test]
fn broadcast_operands_in_both_widths() {
    let Some(d) = private_device() else { return };
    // [rows, cols] with a row vector, a column vector and a scalar, fused after a full operand;
    // 130x128 runs four elements per invocation, the others one.
    // 130x128 is past the size from which chains run four elements per invocation.
    for (rows, cols) in [(5usize, 8usize), (3, 7), (1, 12), (130, 128), (129, 127)] {
        let n = rows * cols;
        let a0 = ramp(n, 2.0);
        let r0 = ramp(cols, 1.0);
        let c0 = ramp(rows, 4.0);
        let s0 = [0.75f32];
        let (a, r, c, s) = (upload(&d, &a0), upload(&d, &r0), upload(&d, &c0), upload(&d, &s0));
        let sh = [rows, cols];
        let t1 = kernels::binary(&d, BinaryOp::Add, &a, &r, &sh, &[cols, 1], &[0, 1]).unwrap();
        let t2 = kernels::binary(&d, BinaryOp::Mul, &t1, &c, &sh, &[cols, 1], &[1, 0]).unwrap();
        let t3 = kernels::binary(&d, BinaryOp::Sub, &s, &t2, &sh, &[0, 0], &[cols, 1]).unwrap();
        let t4 = kernels::unary(&d, UnaryOp::Relu, 0.0, &t3, n).unwrap();
        let want: Vec<f64> = (0..n)
            .map(|i| {
                let (row, col) = (i / cols, i % cols);
                let t2 = (a0[i] as f64 + r0[col] as f64) * c0[row] as f64;
                (s0[0] as f64 - t2).max(0.0)
            })
            .collect();
        close(&f32s(&d, &t4, n), &want, &format!("{rows}x{cols}"));
        let t2w: Vec<f64> = (0..n).map(|i| (a0[i] as f64 + r0[i % cols] as f64) * c0[i / cols] as f64).collect();
        close(&f32s(&d, &t2, n), &t2w, &format!("{rows}x{cols} middle result"));
    }
}

#[test]
fn order_is_kept_around_writes_copies_and_reused_buffers() {
    let Some(d) = private_device() else { return };
    let n = 64;
    let p0 = ramp(n, 1.0);
    let q0 = ramp(n, -3.0);
    let p = upload(&d, &p0);
    let q = upload(&d, &q0);
    // Reads p, then p is overwritten in place, then reads p again: the first result sees the old
    // values, the second the new ones.
    let a = kernels::unary(&d, UnaryOp::MulScalar, 2.0, &p, n).unwrap();
    let a2 = kernels::unary(&d, UnaryOp::AddScalar, 1.0, &a, n).unwrap();
    d.copy(&q, &p, n as u64 * 4).unwrap();
    let b = kernels::unary(&d, UnaryOp::MulScalar, 2.0, &p, n).unwrap();
    close(&f32s(&d, &a2, n), &p0.iter().map(|&v| 2.0 * v as f64 + 1.0).collect::<Vec<_>>(), "before the copy");
    close(&f32s(&d, &b, n), &q0.iter().map(|&v| 2.0 * v as f64).collect::<Vec<_>>(), "after the copy");
    // An input dropped mid-chain goes back to the pool and is handed out again as a later op's
    // output while the chain has not run yet: the chain must still read the old contents.
    let x = upload(&d, &p0);
    let y1 = kernels::unary(&d, UnaryOp::Neg, 0.0, &x, n).unwrap();
    drop(x);
    let y2 = kernels::unary(&d, UnaryOp::AddScalar, 0.5, &y1, n).unwrap();
    let y3 = kernels::unary(&d, UnaryOp::MulScalar, 3.0, &y2, n).unwrap();
    close(&f32s(&d, &y3, n), &p0.iter().map(|&v| (-(v as f64) + 0.5) * 3.0).collect::<Vec<_>>(), "reused input");
    close(&f32s(&d, &y1, n), &p0.iter().map(|&v| -(v as f64)).collect::<Vec<_>>(), "first result");
    // A chain result read by another kind of kernel (a reduction) is written first.
    let s = kernels::unary(&d, UnaryOp::AddScalar, 1.0, &y3, n).unwrap();
    let s = kernels::unary(&d, UnaryOp::MulScalar, 2.0, &s, n).unwrap();
    let total = kernels::reduce(&d, kernels::ReduceOp::Sum, &s, 1, n, 1).unwrap();
    let want: f64 = p0.iter().map(|&v| ((-(v as f64) + 0.5) * 3.0 + 1.0) * 2.0).sum();
    close(&f32s(&d, &total.0, 1), &[want], "sum of a fused result");
}
