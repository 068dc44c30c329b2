//! The matmul launcher and its kernel choice: the generated subgroup kernels on software
//! adapters, the generated vec4 tiles and the scalar blocks of `matmul.wgsl` elsewhere.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::context::Context;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::fuse::Head;
use crate::options::MatmulPolicy;
use crate::pool::GpuBuffer;
use crate::recorder::Launch;
use crate::wgsl::matmul::{MatmulKernel, ScalarKernel};
use crate::wgsl::matmul_rows::{RowForm, RowKernel};
use crate::wgsl::matmul_tiles::{TileForm, TileKernel};

/// How `matmul` reads its operands: `C[z]` (m x n, contiguous) = `op(A[z])` (m x k) * `op(B[z])` (k x n).
/// Strides are in elements; `*_rs`/`*_cs` step one row/column of op(X), `*_bs` one batch
/// (0 broadcasts that operand over the batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulDesc {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The contracted dim.
    pub k: usize,
    /// Number of products.
    pub batch: usize,
    /// Row stride of op(A).
    pub a_rs: usize,
    /// Column stride of op(A).
    pub a_cs: usize,
    /// Batch stride of A.
    pub a_bs: usize,
    /// Row stride of op(B).
    pub b_rs: usize,
    /// Column stride of op(B).
    pub b_cs: usize,
    /// Batch stride of B.
    pub b_bs: usize,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    a_bs: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    b_bs: u32,
    pad2: u32,
    c_bs: u32,
    pad3: [u32; 3],
}

/// The longest contracted dim one dispatch walks: every kernel's invocation loops over its
/// block of K once, and llvmpipe ends a shader's loops, silently, after 65535 iterations in all
/// (`LP_MAX_TGSI_LOOP_ITERATIONS`). A longer K is contracted in blocks of this many (a multiple
/// of 4, so that the blocks keep the vec4 kernels' alignment) whose products are summed.
pub const MATMUL_K_BLOCK: usize = 32768;

/// Batched matmul; see [`MatmulDesc`].
pub fn matmul(dev: &GpuDevice, a: &GpuBuffer, b: &GpuBuffer, d: &MatmulDesc) -> DeviceResult<GpuBuffer> {
    matmul_at(dev, a, 0, b, d)
}

/// [`matmul`] with A read from element `a_off` of its buffer on (a slice of a larger tensor,
/// read in place).
pub fn matmul_at(
    dev: &GpuDevice,
    a: &GpuBuffer,
    a_off: usize,
    b: &GpuBuffer,
    d: &MatmulDesc,
) -> DeviceResult<GpuBuffer> {
    if d.k <= MATMUL_K_BLOCK {
        return matmul_block(dev, a, a_off, b, d, 0);
    }
    let shape = [d.batch * d.m * d.n];
    let mut sum: Option<GpuBuffer> = None;
    for k0 in (0..d.k).step_by(MATMUL_K_BLOCK) {
        let part = matmul_block(dev, a, a_off, b, &MatmulDesc { k: MATMUL_K_BLOCK.min(d.k - k0), ..*d }, k0)?;
        sum = Some(match sum {
            None => part,
            Some(s) => super::binary(dev, crate::op::BinaryOp::Add, &s, &part, &shape, &[1], &[1])?,
        });
    }
    Ok(sum.expect("k > 0"))
}

/// The product over the contracted block [k0, k0 + d.k) of the operands' K, A read from
/// element `a_off` on.
fn matmul_block(
    dev: &GpuDevice,
    a: &GpuBuffer,
    a_off: usize,
    b: &GpuBuffer,
    d: &MatmulDesc,
    k0: usize,
) -> DeviceResult<GpuBuffer> {
    let out_len = d.batch * d.m * d.n;
    let mut out = dev.alloc(out_len as u64 * 4, "matmul")?;
    if out_len == 0 {
        return Ok(out);
    }
    if d.k == 0 {
        // An empty contraction is a zero matrix.
        let zeros = dev.upload(&vec![0u8; out_len * 4], "matmul")?;
        return Ok(zeros);
    }
    let u = |v| u32_of("matmul", v);
    let params = MatmulParams {
        m: u(d.m)?,
        n: u(d.n)?,
        k: u(d.k)?,
        a_off: u(a_off + k0 * d.a_cs)?,
        a_rs: u(d.a_rs)?,
        a_cs: u(d.a_cs)?,
        a_bs: u(d.a_bs)?,
        b_off: u(k0 * d.b_rs)?,
        b_rs: u(d.b_rs)?,
        b_cs: u(d.b_cs)?,
        b_bs: u(d.b_bs)?,
        pad2: 0,
        c_bs: u(d.m * d.n)?,
        pad3: [0; 3],
    };
    // The vec4 readers of A need its start 4-aligned, as they need its batch stride: an
    // unaligned start is chosen for as an unaligned batch stride.
    let choice = if (a_off + k0 * d.a_cs) % 4 == 0 { *d } else { MatmulDesc { a_bs: d.a_bs | 1, ..*d } };
    let kernel = choose_kernel(&choice, dev.row_matmul(), dev.cx().matmul_policy());
    let (rows, cols) = kernel.block();
    let max = dev.limits().max_compute_workgroups_per_dimension as usize;
    let gx = d.n.div_ceil(cols);
    let gy = d.m.div_ceil(rows);
    if gx > max || gy > max || d.batch > max {
        return Err(DeviceError::Launch {
            op: "matmul",
            msg: format!("grid {gx}x{gy}x{} exceeds {max} per dimension", d.batch),
        });
    }
    let groups = [gx as u32, gy as u32, d.batch as u32];
    let params = bytemuck::bytes_of(&params).to_vec();
    let (ra, rb) = (a.raw().clone(), b.raw().clone());
    // The subgroup kernels can take the elementwise ops that follow into their stores.
    let head = match kernel {
        MatmulKernel::Rows(k) => {
            Some(Head { kernel: k, a: ra.clone(), b: rb.clone(), params: params.clone(), groups, four: d.n % 4 == 0 })
        }
        _ => None,
    };
    let launch = Box::new(move |cx: &Context, out: wgpu::Buffer| {
        let pipe = cx.matmul_pipeline(kernel)?;
        Ok(Launch { pipe, bufs: vec![ra, rb, out], params, groups })
    });
    dev.matmul_launch(launch, head, out_len, &mut out)?;
    Ok(out)
}

/// Picks the kernel for a product: a pure function of the problem, whether the adapter runs the
/// subgroup kernels (`rows`: a software adapter with subgroups of 8+ lanes and 64-bit integers)
/// and the device's [`MatmulPolicy`]. With `rows`, the subgroup kernels whenever the layout
/// allows; elsewhere vec4 tiles when the contracted dim is contiguous and 4-aligned (16-row tiles
/// once M can fill them), 8x8 scalar blocks when the output is large enough to keep the grid
/// busy, else 4x4 blocks.
pub fn choose_kernel(d: &MatmulDesc, rows: bool, policy: MatmulPolicy) -> MatmulKernel {
    use MatmulKernel::{Rows, Scalar, Tiles};
    use RowForm::{Cols, Nn, Nn1, Nt, Tn};
    let row = |form, r, t| Rows(RowKernel::new(form, r, t));
    match policy {
        MatmulPolicy::Scalar4 => return Scalar(ScalarKernel::Block4),
        MatmulPolicy::Scalar8 => return Scalar(ScalarKernel::Block8),
        _ => {}
    }
    // A [M, K] with K contiguous; A read transposed from [K, M] with M contiguous.
    let a4 = d.a_cs == 1 && d.k % 4 == 0 && d.a_rs % 4 == 0 && d.a_bs % 4 == 0;
    let at4 = d.a_rs == 1 && d.m % 4 == 0 && d.a_cs % 4 == 0 && d.a_bs % 4 == 0;
    // B [K, N] with N contiguous; B read transposed from [N, K] with K contiguous.
    let b4 = d.b_cs == 1 && d.n % 4 == 0 && d.b_rs % 4 == 0 && d.b_bs % 4 == 0;
    let bt4 = d.b_rs == 1 && d.k % 4 == 0 && d.b_cs % 4 == 0 && d.b_bs % 4 == 0;
    let rows = rows && policy != MatmulPolicy::Tiles;
    if rows && d.m <= 16 && !a4 && b4 && d.n >= 64 {
        // A thin product whose A cannot be read by vec4 (the weight gradient of a 10-row
        // weight): lanes own columns and share A's few rows.
        return row(Cols, 16, 2);
    }
    if rows && d.m >= 32 {
        // Four rows per lane (32-row blocks) unless Rows8: four won on every product measured.
        let r = if policy == MatmulPolicy::Rows8 { 8 } else { 4 };
        if a4 && b4 && d.n >= 16 {
            // 64 columns per subgroup from 64 columns up.
            return row(Nn, r, if d.n >= 64 && policy != MatmulPolicy::Nn32 { 2 } else { 1 });
        }
        if a4 && bt4 {
            return if d.n >= 64 {
                row(Nt, r, 8)
            } else if d.n > 16 {
                row(Nt, r, 4)
            } else {
                // Eight rows per lane here either way (the MLP's h.W3^T, 256x10x512).
                row(Nt, 8, 2)
            };
        }
        if at4 && b4 && d.n >= 16 {
            // From 64 columns up, 64 rows x 32 columns (the MLP's weight gradients).
            return match (d.n >= 64, r) {
                (true, 8) => row(Tn, 8, 2),
                (true, _) => row(Tn, 8, 1),
                (false, _) => row(Tn, r, 1),
            };
        }
        if b4 && d.n >= 64 {
            // Any other A (a K such as 10): one value of K at a time, A by scalar loads.
            return row(Nn1, r, 2);
        }
    }
    let big = d.m >= 32 && d.n >= 32;
    // 16-row tiles once M can fill them.
    let tall = if d.m >= 64 { 16 } else { 8 };
    if big && a4 && b4 {
        return Tiles(TileKernel::new(TileForm::Nn, tall));
    }
    if big && a4 && bt4 {
        return Tiles(TileKernel::new(TileForm::Nt, tall));
    }
    // A transposed times B plain: the weight gradient.
    if big && at4 && b4 {
        return Tiles(TileKernel::new(TileForm::Tn, 8));
    }
    if d.m >= 64 && d.n >= 64 { Scalar(ScalarKernel::Block8) } else { Scalar(ScalarKernel::Block4) }
}

/// Every kernel [`choose_kernel`] returns for some problem, adapter and policy (found by running
/// it over problems that reach each of its branches): what validation tests and snapshots cover.
pub fn reachable_kernels() -> Vec<MatmulKernel> {
    let policies = [
        MatmulPolicy::Auto,
        MatmulPolicy::Tiles,
        MatmulPolicy::Rows8,
        MatmulPolicy::Nn32,
        MatmulPolicy::Scalar4,
        MatmulPolicy::Scalar8,
    ];
    let sizes = [1, 10, 16, 17, 32, 64, 100, 256];
    let mut out: Vec<MatmulKernel> = Vec::new();
    for rows in [false, true] {
        for policy in policies {
            for &m in &sizes {
                for &n in &sizes {
                    for &k in &[3, 4, 10, 64] {
                        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                            let d = MatmulDesc::plain(m, n, k, ta, tb);
                            let kernel = choose_kernel(&d, rows, policy);
                            if !out.contains(&kernel) {
                                out.push(kernel);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

impl MatmulDesc {
    /// One contiguous product of op(A) (m x k) and op(B) (k x n), A stored [k, m] when `ta`, B
    /// stored [n, k] when `tb`.
    pub fn plain(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> MatmulDesc {
        let (a_rs, a_cs) = if ta { (1, m) } else { (k, 1) };
        let (b_rs, b_cs) = if tb { (1, k) } else { (n, 1) };
        MatmulDesc { m, n, k, batch: 1, a_rs, a_cs, a_bs: m * k, b_rs, b_cs, b_bs: k * n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(src: &str, what: &str) {
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all());
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        v.validate(&module).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
        assert_eq!(module.entry_points.len(), 1, "{what}: one entry point per module");
    }

    /// Every kernel the picker can choose is a valid description, and its source validates with
    /// naga (the subgroup kernels also as a software adapter compiles them, widened).
    #[test]
    fn every_reachable_kernel_validates() {
        let all = reachable_kernels();
        let rows = all.iter().filter(|k| matches!(k, MatmulKernel::Rows(_))).count();
        let tiles = all.iter().filter(|k| matches!(k, MatmulKernel::Tiles(_))).count();
        assert!(rows >= 10 && tiles == 5 && all.len() == rows + tiles + 2, "{all:?}");
        for k in all {
            let src = match k {
                MatmulKernel::Rows(r) => {
                    assert!(r.valid(), "{r:?}");
                    let wide = crate::wgsl::widen(&r.source());
                    validate(&wide, &format!("widened {}", r.name()));
                    r.source()
                }
                MatmulKernel::Tiles(t) => {
                    assert!(t.valid(), "{t:?}");
                    t.source()
                }
                MatmulKernel::Scalar(_) => continue,
            };
            validate(&src, &k.name());
            assert!(src.contains(&format!("fn {}(", k.name())));
        }
    }

    /// The choices for the products of the digits MLP (784-512-512-10, batch 256) and the
    /// edges between forms, on a software adapter and elsewhere.
    #[test]
    fn choices() {
        use MatmulKernel::{Rows, Scalar, Tiles};
        let r = |form, rows, tiles| Rows(RowKernel::new(form, rows, tiles));
        let auto = MatmulPolicy::Auto;
        // x.W1^T (nt), g.W (nn), x^T.g (tn), thin products with N or M = 10.
        assert_eq!(choose_kernel(&MatmulDesc::plain(256, 512, 784, false, true), true, auto), r(RowForm::Nt, 4, 8));
        assert_eq!(choose_kernel(&MatmulDesc::plain(256, 784, 512, false, false), true, auto), r(RowForm::Nn, 4, 2));
        assert_eq!(choose_kernel(&MatmulDesc::plain(512, 784, 256, true, false), true, auto), r(RowForm::Tn, 8, 1));
        assert_eq!(choose_kernel(&MatmulDesc::plain(256, 10, 512, false, true), true, auto), r(RowForm::Nt, 8, 2));
        assert_eq!(choose_kernel(&MatmulDesc::plain(256, 512, 10, false, false), true, auto), r(RowForm::Nn1, 4, 2));
        assert_eq!(choose_kernel(&MatmulDesc::plain(10, 512, 256, true, false), true, auto), r(RowForm::Cols, 16, 2));
        assert_eq!(
            choose_kernel(&MatmulDesc::plain(256, 512, 784, false, true), true, MatmulPolicy::Rows8),
            r(RowForm::Nt, 8, 8)
        );
        assert_eq!(
            choose_kernel(&MatmulDesc::plain(256, 784, 512, false, false), true, MatmulPolicy::Nn32),
            r(RowForm::Nn, 4, 1)
        );
        // Not a software adapter, or Tiles: the vec4 tiles, 16 rows from M = 64.
        let tile = |form, rows| Tiles(TileKernel::new(form, rows));
        assert_eq!(choose_kernel(&MatmulDesc::plain(256, 512, 784, false, true), false, auto), tile(TileForm::Nt, 16));
        assert_eq!(
            choose_kernel(&MatmulDesc::plain(32, 784, 512, false, false), true, MatmulPolicy::Tiles),
            tile(TileForm::Nn, 8)
        );
        assert_eq!(choose_kernel(&MatmulDesc::plain(512, 784, 256, true, false), false, auto), tile(TileForm::Tn, 8));
        // K = 3: no vec4 reads at all.
        assert_eq!(
            choose_kernel(&MatmulDesc::plain(64, 64, 3, false, false), false, auto),
            Scalar(ScalarKernel::Block8)
        );
        assert_eq!(
            choose_kernel(&MatmulDesc::plain(10, 64, 3, false, false), false, auto),
            Scalar(ScalarKernel::Block4)
        );
        assert_eq!(
            choose_kernel(&MatmulDesc::plain(256, 512, 784, false, true), true, MatmulPolicy::Scalar4),
            Scalar(ScalarKernel::Block4)
        );
    }
}
