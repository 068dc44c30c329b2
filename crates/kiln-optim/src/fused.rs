//! One optimizer update of one parameter: the fused WGSL kernel on the GPU, the same formulas
//! (op for op, so the devices agree) on the CPU.

use kiln_core::kiln_device::kernels::{self, OptimKernel, OptimParams, optim_flags as f};
use kiln_core::{Error, Parameter, RawStorage, Result, Tensor};

use crate::state::{ParamState, StateBuf};

fn cpu_sgd(u: &OptimParams, p: &[f32], g: &[f32], s1: Option<&mut Vec<f32>>) -> Vec<f32> {
    let has = |x: u32| u.flags & x != 0;
    let mut s1 = s1;
    let mut out = Vec::with_capacity(p.len());
    for i in 0..p.len() {
        let pv = p[i];
        let mut d = if has(f::MAXIMIZE) { -g[i] } else { g[i] };
        if u.wd != 0.0 {
            d += u.wd * pv;
        }
        if has(f::MOMENTUM) {
            let buf = s1.as_mut().expect("momentum buffer");
            let b = if has(f::FIRST_STEP) { d } else { buf[i] * u.momentum + (1.0 - u.dampening) * d };
            buf[i] = b;
            d = if has(f::NESTEROV) { d + u.momentum * b } else { b };
        }
        out.push(pv + (-u.lr) * d);
    }
    out
}

fn cpu_adam(u: &OptimParams, p: &[f32], g: &[f32], s: [Option<&mut Vec<f32>>; 3]) -> Vec<f32> {
    let has = |x: u32| u.flags & x != 0;
    let [s1, s2, s3] = s;
    let (m_buf, v_buf) = (s1.expect("exp_avg"), s2.expect("exp_avg_sq"));
    let max_buf = if has(f::AMSGRAD) { Some(s3.expect("max_exp_avg_sq").as_mut_slice()) } else { None };
    // The flags decided once, outside the loops (which then vectorise): the gradient's sign,
    // decoupled decay of the parameter or L2 added to the gradient.
    let sign = if has(f::MAXIMIZE) { -1.0 } else { 1.0 };
    let (decay, l2) = if has(f::DECOUPLED) { (u.decay, 0.0) } else { (1.0, u.wd) };
    let w = u.one_minus_beta1;
    // The first moment's update in the form that is exact at w = 1 (as the GPU kernel).
    if w < 0.5 {
        adam_loop(u, p, g, m_buf, v_buf, max_buf, sign, decay, l2, |m0, gr| m0 + w * (gr - m0))
    } else {
        adam_loop(u, p, g, m_buf, v_buf, max_buf, sign, decay, l2, |m0, gr| gr - (gr - m0) * (1.0 - w))
    }
}

/// Adam's update of every element: the moments in place, the new parameters returned.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn adam_loop(
    u: &OptimParams,
    p: &[f32],
    g: &[f32],
    m_buf: &mut [f32],
    v_buf: &mut [f32],
    max_buf: Option<&mut [f32]>,
    sign: f32,
    decay: f32,
    l2: f32,
    first: impl Fn(f32, f32) -> f32,
) -> Vec<f32> {
    let n = p.len();
    let (g, m_buf, v_buf) = (&g[..n], &mut m_buf[..n], &mut v_buf[..n]);
    let update = |pv: f32, gr: f32, m: &mut f32, v: &mut f32| {
        let pv = pv * decay;
        // (L2 only where there is some: 0 * an infinite parameter would be NaN.)
        let gr = if l2 != 0.0 { sign * gr + l2 * pv } else { sign * gr };
        *m = first(*m, gr);
        *v = *v * u.beta2 + u.one_minus_beta2 * gr * gr;
        pv
    };
    let step = |pv: f32, m: f32, vv: f32| pv + (-u.step_size) * (m / (vv.sqrt() / u.bc2_sqrt + u.eps));
    let mut out = Vec::with_capacity(n);
    match max_buf {
        None => out.extend(p.iter().zip(g).zip(m_buf.iter_mut().zip(v_buf.iter_mut())).map(|((&pv, &gr), (m, v))| {
            let pv = update(pv, gr, m, v);
            step(pv, *m, *v)
        })),
        Some(mx) => {
            let mx = &mut mx[..n];
            out.extend(p.iter().zip(g).zip(m_buf.iter_mut().zip(v_buf.iter_mut())).zip(mx.iter_mut()).map(
                |(((&pv, &gr), (m, v)), mx)| {
                    let pv = update(pv, gr, m, v);
                    *mx = mx.max(*v);
                    step(pv, *m, *mx)
                },
            ))
        }
    }
    out
}

/// Applies `kernel` with scalars `u` to `p` (whose gradient is `g`), updating `st` in place.
pub(crate) fn apply(kernel: OptimKernel, p: &Parameter, g: &Tensor, st: &mut ParamState, u: OptimParams) -> Result<()> {
    let value = p.tensor().detach();
    let dev = value.device();
    if g.device() != dev || g.shape() != value.shape() {
        return Err(Error::invalid(
            "optimizer step",
            format!(
                "gradient {:?} on {} does not match parameter {:?} on {}",
                g.shape(),
                g.device(),
                value.shape(),
                dev
            ),
        ));
    }
    let shape = value.shape().to_vec();
    for b in st.bufs.iter_mut().flatten() {
        b.ensure_on(&dev, &shape)?;
    }
    let new = match (value.raw_storage(), g.raw_storage()) {
        (RawStorage::CpuF32(pv), RawStorage::CpuF32(gv)) => {
            fn cpu(x: &mut Option<StateBuf>) -> Option<&mut Vec<f32>> {
                match x {
                    Some(StateBuf::Cpu(v)) => Some(v),
                    _ => None,
                }
            }
            let [a, b, c] = &mut st.bufs;
            let (a, b, c) = (cpu(a), cpu(b), cpu(c));
            let out = match kernel {
                OptimKernel::Sgd => cpu_sgd(&u, pv, gv, a),
                OptimKernel::Adam => cpu_adam(&u, pv, gv, [a, b, c]),
            };
            Tensor::from_vec(out, &shape, &dev)?
        }
        (RawStorage::Gpu(pb), RawStorage::Gpu(gb)) => {
            let gpu = dev.as_gpu().expect("gpu tensor on a gpu device");
            fn gbuf(x: &Option<StateBuf>) -> Option<&kiln_core::kiln_device::GpuBuffer> {
                match x {
                    Some(StateBuf::Gpu(b, _)) => Some(b),
                    _ => None,
                }
            }
            let [a, b, c] = &st.bufs;
            let out = kernels::optim_step(gpu, kernel, pb, gb, [gbuf(a), gbuf(b), gbuf(c)], u, value.numel())?;
            Tensor::from_gpu_buffer(out, &shape, &dev)?
        }
        _ => return Err(Error::invalid("optimizer step", "parameters and gradients must be f32")),
    };
    p.set(new)?;
    // Pruned weights stay zero through training.
    p.apply_mask()
}
