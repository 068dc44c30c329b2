//! Launchers of `im2col.wgsl` (convolution and pooling windows as matrix columns, and back) and
//! of `pool.wgsl` (max pooling and its backward), which share the window geometry.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::grid_threads;
use crate::wgsl::Family;

/// The geometry of a sliding window over x [b, c, h, w]: kernel (kh, kw), stride (sh, sw),
/// padding (ph, pw), dilation (dh, dw), and the output size (oh, ow) it gives. The columns are
/// [c, kh, kw, b, oh, ow] (see `im2col.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Im2colDesc {
    /// Batch.
    pub b: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Stride along the height.
    pub sh: usize,
    /// Stride along the width.
    pub sw: usize,
    /// Padding along the height (each side).
    pub ph: usize,
    /// Padding along the width (each side).
    pub pw: usize,
    /// Dilation along the height.
    pub dh: usize,
    /// Dilation along the width.
    pub dw: usize,
}

impl Im2colDesc {
    /// Elements of x.
    pub fn input_len(&self) -> usize {
        self.b * self.c * self.h * self.w
    }

    /// Elements of the columns.
    pub fn cols_len(&self) -> usize {
        self.c * self.kh * self.kw * self.b * self.oh * self.ow
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Im2colParams {
    b: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    n: u32,
    pad: f32,
}

fn params(d: &Im2colDesc, n: usize, pad: f32) -> DeviceResult<Im2colParams> {
    let u = |v| u32_of("im2col", v);
    if d.sh == 0 || d.sw == 0 || d.dh == 0 || d.dw == 0 {
        return Err(DeviceError::Launch { op: "im2col", msg: format!("zero stride or dilation in {d:?}") });
    }
    // Every index the kernels form must fit in u32 (and the padded extent in i32).
    u32_of("im2col", d.cols_len().max(d.input_len()))?;
    i32::try_from(d.h.max(d.w) + d.ph.max(d.pw) + d.kh.max(d.kw) * d.dh.max(d.dw))
        .map_err(|_| DeviceError::Launch { op: "im2col", msg: format!("window too large: {d:?}") })?;
    Ok(Im2colParams {
        b: u(d.b)?,
        c: u(d.c)?,
        h: u(d.h)?,
        w: u(d.w)?,
        kh: u(d.kh)?,
        kw: u(d.kw)?,
        oh: u(d.oh)?,
        ow: u(d.ow)?,
        sh: u(d.sh)?,
        sw: u(d.sw)?,
        ph: u(d.ph)?,
        pw: u(d.pw)?,
        dh: u(d.dh)?,
        dw: u(d.dw)?,
        n: u(n)?,
        pad,
    })
}

/// The columns [c, kh, kw, b, oh, ow] of x [b, c, h, w]; positions outside x read `pad`.
pub fn im2col(dev: &GpuDevice, x: &GpuBuffer, d: &Im2colDesc, pad: f32) -> DeviceResult<GpuBuffer> {
    let out = dev.alloc(d.cols_len() as u64 * 4, "im2col")?;
    if d.ow == 0 {
        return Ok(out);
    }
    // One invocation per four outputs of a column row.
    let threads = d.cols_len() / d.ow * d.ow.div_ceil(4);
    let p = params(d, threads, pad)?;
    let pipe = dev.cx().pipeline(Family::Im2col, "im2col", &[])?;
    dev.record(&pipe, &[x.raw(), out.raw()], bytemuck::bytes_of(&p), grid_threads(dev.cx(), threads)?)?;
    Ok(out)
}

/// im2col's adjoint: dx [b, c, h, w], each element the sum of the columns of `g` that read it.
pub fn col2im(dev: &GpuDevice, g: &GpuBuffer, d: &Im2colDesc) -> DeviceResult<GpuBuffer> {
    let n = d.input_len();
    let out = dev.alloc(n as u64 * 4, "col2im")?;
    let p = params(d, n, 0.0)?;
    let pipe = dev.cx().pipeline(Family::Im2col, "col2im", &[])?;
    dev.record(&pipe, &[g.raw(), out.raw()], bytemuck::bytes_of(&p), grid_threads(dev.cx(), n)?)?;
    Ok(out)
}

/// Max pooling of x [b, c, h, w] over `d`'s windows (dilation allowed, padding never wins):
/// the values [b, c, oh, ow] and, for each, the flat index in x of the window's first maximum
/// (u32).
pub fn max_pool(dev: &GpuDevice, x: &GpuBuffer, d: &Im2colDesc) -> DeviceResult<(GpuBuffer, GpuBuffer)> {
    let n = d.b * d.c * d.oh * d.ow;
    let out = dev.alloc(n as u64 * 4, "max_pool2d")?;
    let idx = dev.alloc(n as u64 * 4, "max_pool2d")?;
    let p = params(d, n, 0.0)?;
    let pipe = dev.cx().pipeline(Family::Pool, "max_pool", &[])?;
    let bufs = [x.raw(), dev.cx().dummy(0), out.raw(), idx.raw()];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&p), grid_threads(dev.cx(), n)?)?;
    Ok((out, idx))
}

/// Backward of [`max_pool`]: dx [b, c, h, w], each element the sum of the gradients `g` of the
/// windows whose arg-max (`idx`) it is.
pub fn max_pool_backward(dev: &GpuDevice, g: &GpuBuffer, idx: &GpuBuffer, d: &Im2colDesc) -> DeviceResult<GpuBuffer> {
    let n = d.input_len();
    let out = dev.alloc(n as u64 * 4, "max_pool2d backward")?;
    let p = params(d, n, 0.0)?;
    let pipe = dev.cx().pipeline(Family::Pool, "max_pool_backward", &[])?;
    let bufs = [g.raw(), idx.raw(), out.raw(), dev.cx().dummy(1)];
    dev.record(&pipe, &bufs, bytemuck::bytes_of(&p), grid_threads(dev.cx(), n)?)?;
    Ok(out)
}
