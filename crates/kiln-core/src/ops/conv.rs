//! Convolution and pooling (NCHW / NCL, PyTorch's output sizes), built on one primitive: `im2col`,
//! the sliding windows of x as the columns of a matrix (its backward, `col2im`, sums each
//! window's gradient back into the elements it read). A grouped convolution is then one batched
//! matmul with the weight (the columns are laid out [groups, Cg * KH * KW, B * OH * OW]); max and
//! average pooling are a max or a mean over the window axis (max's backward routes to the
//! arg-max, the first in the window as in PyTorch); adaptive average pooling is two products with
//! averaging matrices. Everything else (gradients for the input, the weight and the bias) follows
//! from the parts' backward rules.

use kiln_device::kernels::{self, Im2colDesc};

use super::gpu;
use crate::autograd::Op;
use crate::cpu;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::storage::{CpuData, Storage};
use crate::tensor::Tensor;

/// Options of [`conv2d`] (PyTorch's defaults: stride 1, padding 0, dilation 1, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between windows (height, width).
    pub stride: (usize, usize),
    /// Zeros added on each side (height, width).
    pub padding: (usize, usize),
    /// Spacing of the kernel's taps (height, width).
    pub dilation: (usize, usize),
    /// Channel groups: `in_channels` and `out_channels` divisible by it; `groups = in_channels`
    /// is a depthwise convolution.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions { stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1 }
    }
}

/// Options of [`conv1d`] (PyTorch's defaults: stride 1, padding 0, dilation 1, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dOptions {
    /// Step between windows.
    pub stride: usize,
    /// Zeros added on each side.
    pub padding: usize,
    /// Spacing of the kernel's taps.
    pub dilation: usize,
    /// Channel groups.
    pub groups: usize,
}

impl Default for Conv1dOptions {
    fn default() -> Self {
        Conv1dOptions { stride: 1, padding: 0, dilation: 1, groups: 1 }
    }
}

impl Conv1dOptions {
    /// The same convolution as a 2-D one over a height of 1.
    fn as_2d(&self) -> Conv2dOptions {
        Conv2dOptions {
            stride: (1, self.stride),
            padding: (0, self.padding),
            dilation: (1, self.dilation),
            groups: self.groups,
        }
    }
}

/// The window geometry over x [b, c, h, w], checked: positive kernel, stride and dilation, a
/// kernel that fits the padded input, a non-empty output.
fn window(
    op: &'static str,
    x: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
) -> Result<Im2colDesc> {
    let [b, c, h, w] = x[..] else {
        return Err(Error::invalid(op, format!("expects an input [N, C, H, W], got shape {x:?}")));
    };
    let pairs = [("kernel", kernel), ("stride", stride), ("dilation", dilation)];
    if let Some((name, v)) = pairs.iter().find(|(_, v)| v.0 == 0 || v.1 == 0) {
        return Err(Error::invalid(op, format!("{name} {v:?} must be positive (input shape {x:?})")));
    }
    let extent = |k: usize, d: usize| d.checked_mul(k - 1).and_then(|e| e.checked_add(1));
    let out = |size: usize, k: usize, s: usize, p: usize, d: usize| -> Option<usize> {
        let padded = size.checked_add(p.checked_mul(2)?)?;
        Some(padded.checked_sub(extent(k, d)?)? / s + 1)
    };
    match (out(h, kernel.0, stride.0, padding.0, dilation.0), out(w, kernel.1, stride.1, padding.1, dilation.1)) {
        (Some(oh), Some(ow)) => Ok(Im2colDesc {
            b,
            c,
            h,
            w,
            kh: kernel.0,
            kw: kernel.1,
            oh,
            ow,
            sh: stride.0,
            sw: stride.1,
            ph: padding.0,
            pw: padding.1,
            dh: dilation.0,
            dw: dilation.1,
        }),
        _ => Err(Error::invalid(
            op,
            format!(
                "the kernel {kernel:?} (dilation {dilation:?}) is larger than the padded input: shape {x:?}, \
                 padding {padding:?}"
            ),
        )),
    }
}

impl Tensor {
    /// The windows of this [b, c, h, w] tensor as columns [c * kh * kw, b * oh * ow] (laid out
    /// [c, kh, kw, b, oh, ow]); positions outside it read `pad`. Differentiable.
    fn im2col(&self, d: &Im2colDesc, pad: f32) -> Result<Tensor> {
        let storage = match self.storage() {
            Storage::Gpu(x) => Storage::gpu(kernels::im2col(gpu(self.dev()), x, d, pad)?),
            _ => Storage::f32_cpu(cpu::im2col(self.cpu_f32(), d, pad)),
        };
        let shape = vec![d.c * d.kh * d.kw, d.b * d.oh * d.ow];
        Ok(Tensor::from_op(storage, shape, DType::F32, self.device(), Op::Im2col { x: self.clone(), desc: *d }))
    }

    /// im2col's adjoint (for its backward): columns back to [b, c, h, w], summed. Not recorded.
    pub(crate) fn col2im(&self, d: &Im2colDesc) -> Result<Tensor> {
        let storage = match self.storage() {
            Storage::Gpu(g) => Storage::gpu(kernels::col2im(gpu(self.dev()), g, d)?),
            _ => Storage::f32_cpu(cpu::col2im(self.cpu_f32(), d)),
        };
        Ok(Tensor::from_parts(storage, vec![d.b, d.c, d.h, d.w], DType::F32, self.device()))
    }

    /// Max pooling in one kernel: the windows' maxima [b, c, oh, ow], differentiable (each
    /// window's gradient goes to its first maximum).
    fn max_pool(&self, d: &Im2colDesc) -> Result<Tensor> {
        let (vals, idx) = match self.storage() {
            Storage::Gpu(x) => {
                let (v, i) = kernels::max_pool(gpu(self.dev()), x, d)?;
                (Storage::gpu(v), Storage::gpu(i))
            }
            _ => {
                let (v, i) = cpu::max_pool(self.cpu_f32(), d);
                (Storage::f32_cpu(v), Storage::Cpu(CpuData::U32(std::sync::Arc::new(i))))
            }
        };
        let shape = vec![d.b, d.c, d.oh, d.ow];
        let idx = Tensor::from_parts(idx, shape.clone(), DType::U32, self.device());
        Ok(Tensor::from_op(vals, shape, DType::F32, self.device(), Op::MaxPool { x: self.clone(), idx, desc: *d }))
    }

    /// Backward of [`Tensor::max_pool`] (not recorded).
    pub(crate) fn max_pool_backward(&self, idx: &Tensor, d: &Im2colDesc) -> Result<Tensor> {
        let storage = match (self.storage(), idx.storage()) {
            (Storage::Gpu(g), Storage::Gpu(i)) => Storage::gpu(kernels::max_pool_backward(gpu(self.dev()), g, i, d)?),
            _ => Storage::f32_cpu(cpu::max_pool_backward(self.cpu_f32(), &idx.to_vec_u32()?, d)),
        };
        Ok(Tensor::from_parts(storage, vec![d.b, d.c, d.h, d.w], DType::F32, self.device()))
    }
}

fn check_input(op: &'static str, t: &Tensor, rank: usize) -> Result<()> {
    t.expect_dtype(op, DType::F32)?;
    if t.rank() != rank {
        let what = if rank == 4 { "[N, C, H, W]" } else { "[N, C, L]" };
        return Err(Error::invalid(op, format!("expects an input {what}, got shape {:?}", t.shape())));
    }
    Ok(())
}

/// 2-D convolution (cross-correlation, as PyTorch's `F.conv2d`): x [N, C, H, W], weight
/// [O, C / groups, KH, KW], bias [O]; the result is [N, O, OH, OW] with
/// OH = (H + 2 padding - dilation (KH - 1) - 1) / stride + 1. Differentiable in all three.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, o: &Conv2dOptions) -> Result<Tensor> {
    let op = "conv2d";
    check_input(op, x, 4)?;
    check_input(op, weight, 4)?;
    x.same_device(op, weight)?;
    let (c, out_c, g) = (x.shape()[1], weight.shape()[0], o.groups);
    if g == 0 || c % g != 0 || out_c % g != 0 || weight.shape()[1] * g != c {
        return Err(Error::invalid(
            op,
            format!(
                "input {:?} and weight {:?} with {g} groups: in_channels and out_channels must be divisible by \
                 groups, and the weight [out_channels, in_channels / groups, kh, kw]",
                x.shape(),
                weight.shape()
            ),
        ));
    }
    if let Some(b) = bias {
        b.expect_dtype(op, DType::F32)?;
        x.same_device(op, b)?;
        if b.shape() != [out_c] {
            return Err(Error::ShapeMismatch { op, lhs: weight.shape().to_vec(), rhs: b.shape().to_vec() });
        }
    }
    let kernel = (weight.shape()[2], weight.shape()[3]);
    let d = window(op, x.shape(), kernel, o.stride, o.padding, o.dilation)?;
    let (n, l) = (d.b, d.oh * d.ow);
    let kg = c / g * kernel.0 * kernel.1;
    // [G, O/G, Kg] @ [G, Kg, N * L] = [G, O/G, N * L], i.e. [O, N, L].
    let cols = x.im2col(&d, 0.0)?.reshape(&[g, kg, n * l])?;
    let y = weight.reshape(&[g, out_c / g, kg])?.matmul(&cols)?.reshape(&[out_c, n * l])?;
    // The bias added before the transpose, a column broadcast the matmul's stores can take.
    let y = match bias {
        Some(b) => y.add(&b.reshape(&[out_c, 1])?)?,
        None => y,
    };
    y.reshape(&[out_c, n, l])?.transpose(0usize, 1usize)?.reshape(&[n, out_c, d.oh, d.ow])
}

/// 1-D convolution (PyTorch's `F.conv1d`): x [N, C, L], weight [O, C / groups, K], bias [O];
/// the result is [N, O, L_out].
pub fn conv1d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, o: &Conv1dOptions) -> Result<Tensor> {
    check_input("conv1d", x, 3)?;
    check_input("conv1d", weight, 3)?;
    let (n, c, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let w = weight.shape();
    let y = conv2d(&x.reshape(&[n, c, 1, l])?, &weight.reshape(&[w[0], w[1], 1, w[2]])?, bias, &o.as_2d()).map_err(
        |e| match e {
            Error::Invalid { msg, .. } => Error::invalid("conv1d", msg),
            e => e,
        },
    )?;
    let s = y.shape().to_vec();
    y.reshape(&[s[0], s[1], s[3]])
}

/// Checks PyTorch's pooling rule: padding at most half the kernel.
fn check_pool_padding(op: &'static str, kernel: (usize, usize), padding: (usize, usize)) -> Result<()> {
    if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
        return Err(Error::invalid(op, format!("padding {padding:?} must be at most half the kernel {kernel:?}")));
    }
    Ok(())
}

/// 2-D max pooling (PyTorch's `F.max_pool2d`, dilation 1): x [N, C, H, W] -> [N, C, OH, OW];
/// padding never wins. One kernel forward (the maximum and its index) and one backward: the
/// gradient goes to each window's arg-max (its first maximum; a NaN propagates).
pub fn max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    let op = "max_pool2d";
    check_input(op, x, 4)?;
    let d = window(op, x.shape(), kernel, stride, padding, (1, 1))?;
    check_pool_padding(op, kernel, padding)?;
    x.max_pool(&d)
}

/// 2-D average pooling (PyTorch's `F.avg_pool2d` with `count_include_pad=True`, its default):
/// x [N, C, H, W] -> [N, C, OH, OW]; padding counts as zeros in the average.
pub fn avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    let op = "avg_pool2d";
    check_input(op, x, 4)?;
    let d = window(op, x.shape(), kernel, stride, padding, (1, 1))?;
    check_pool_padding(op, kernel, padding)?;
    // The mean over the window axis of the columns [C, KH*KW, N*L], back to [N, C, OH, OW].
    let cols = x.im2col(&d, 0.0)?.reshape(&[d.c, d.kh * d.kw, d.b * d.oh * d.ow])?;
    cols.mean(1usize, false)?.reshape(&[d.c, d.b, d.oh, d.ow])?.transpose(0usize, 1usize)
}

/// The [out, size] matrix whose row i averages PyTorch's adaptive window i:
/// floor(i * size / out) .. ceil((i + 1) * size / out).
fn adaptive_matrix(size: usize, out: usize, dev: &crate::device::Device) -> Result<Tensor> {
    let mut m = vec![0f32; out * size];
    for i in 0..out {
        let (start, end) = (i * size / out, ((i + 1) * size).div_ceil(out));
        for j in start..end {
            m[i * size + j] = 1.0 / (end - start) as f32;
        }
    }
    Tensor::from_vec(m, &[out, size], dev)
}

/// Adaptive 2-D average pooling (PyTorch's `F.adaptive_avg_pool2d`): x [N, C, H, W] ->
/// [N, C, out.0, out.1], each output the average of its window (windows may overlap when the
/// size does not divide).
pub fn adaptive_avg_pool2d(x: &Tensor, out: (usize, usize)) -> Result<Tensor> {
    let op = "adaptive_avg_pool2d";
    check_input(op, x, 4)?;
    let [n, c, h, w] = x.shape()[..] else { unreachable!("checked rank") };
    if out.0 == 0 || out.1 == 0 || h == 0 || w == 0 {
        return Err(Error::invalid(op, format!("output size {out:?} and input {:?} must be non-empty", x.shape())));
    }
    let ph = adaptive_matrix(h, out.0, x.dev())?;
    let pw = adaptive_matrix(w, out.1, x.dev())?;
    // Ph @ x @ Pw^T for every (n, c): [N*C, H, W] @ [W, OW], then [OH, H] @ [N*C, H, OW].
    let rows = x.reshape(&[n * c, h, w])?.matmul(&pw.t()?)?;
    ph.matmul(&rows)?.reshape(&[n, c, out.0, out.1])
}
