//! The matmul launcher and its kernel choice: the subgroup kernels of `matmul_rows.wgsl` on
//! software adapters, the vec4 tiles of `matmul_vec4.wgsl` and the scalar blocks of
//! `matmul.wgsl` elsewhere.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::context::GpuDevice;
use crate::epilogue::{Head, HeadKernel};
use crate::error::{DeviceError, DeviceResult};
use crate::fuse::Launch;
use crate::pool::GpuBuffer;
use crate::shaders::Family;

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
    pad0: u32,
    a_rs: u32,
    a_cs: u32,
    a_bs: u32,
    pad1: u32,
    b_rs: u32,
    b_cs: u32,
    b_bs: u32,
    pad2: u32,
    c_bs: u32,
    pad3: [u32; 3],
}

/// Batched matmul; see [`MatmulDesc`].
pub fn matmul(dev: &GpuDevice, a: &GpuBuffer, b: &GpuBuffer, d: &MatmulDesc) -> DeviceResult<GpuBuffer> {
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
        pad0: 0,
        a_rs: u(d.a_rs)?,
        a_cs: u(d.a_cs)?,
        a_bs: u(d.a_bs)?,
        pad1: 0,
        b_rs: u(d.b_rs)?,
        b_cs: u(d.b_cs)?,
        b_bs: u(d.b_bs)?,
        pad2: 0,
        c_bs: u(d.m * d.n)?,
        pad3: [0; 3],
    };
    let v = matmul_variant(d, dev.row_matmul());
    let max = dev.limits().max_compute_workgroups_per_dimension as usize;
    let gx = d.n.div_ceil(v.cols);
    let gy = d.m.div_ceil(v.rows);
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
    let head = (v.family == Family::MatmulRows).then(|| Head {
        kernel: HeadKernel { entry: v.entry, rows: v.rows as u32, cols: v.cols as u32 },
        a: ra.clone(),
        b: rb.clone(),
        params: params.clone(),
        groups,
        four: d.n % 4 == 0,
    });
    let (family, entry) = (v.family, v.entry);
    let launch = Box::new(move |dev: &GpuDevice, out: wgpu::Buffer| {
        let pipe = dev.pipeline(family, entry, &[])?;
        Ok(Launch { pipe, bufs: vec![ra, rb, out], params, groups })
    });
    dev.matmul_launch(launch, head, out_len, &mut out)?;
    Ok(out)
}

/// A matmul kernel and the block of C each workgroup computes.
struct MatmulVariant {
    family: Family,
    entry: &'static str,
    /// Columns and rows of C per workgroup.
    cols: usize,
    rows: usize,
}

impl MatmulVariant {
    fn new(family: Family, entry: &'static str, cols: usize, rows: usize) -> Self {
        MatmulVariant { family, entry, cols, rows }
    }
}

/// Picks the kernel for a product. On a software adapter with subgroups (`rows`), the subgroup
/// kernels of `matmul_rows.wgsl` whenever the layout allows; elsewhere vec4 loads when the
/// contracted dim is contiguous and 4-aligned, 16-row tiles once M can fill them, 8x8 blocks
/// when the output is large enough to keep the grid busy, else 4x4 blocks.
/// `KILN_MATMUL=tiles` skips the subgroup kernels, `KILN_MATMUL=r8` takes their 64-row blocks,
/// `KILN_MATMUL=nn32` keeps `nn` products at 32 columns per subgroup, and
/// `KILN_MATMUL=scalar4|scalar8` forces a scalar kernel (for benchmarks and tests).
fn matmul_variant(d: &MatmulDesc, rows: bool) -> MatmulVariant {
    use Family::{Matmul, MatmulRows, MatmulVec4};
    // Read once per process: this runs on every matmul launch.
    static FORCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let force = FORCE.get_or_init(|| std::env::var("KILN_MATMUL").unwrap_or_default());
    match force.as_str() {
        "scalar4" => return MatmulVariant::new(Matmul, "matmul", 32, 32),
        "scalar8" => return MatmulVariant::new(Matmul, "matmul8", 64, 64),
        _ => {}
    }
    // A [M, K] with K contiguous; A read transposed from [K, M] with M contiguous.
    let a4 = d.a_cs == 1 && d.k % 4 == 0 && d.a_rs % 4 == 0 && d.a_bs % 4 == 0;
    let at4 = d.a_rs == 1 && d.m % 4 == 0 && d.a_cs % 4 == 0 && d.a_bs % 4 == 0;
    // B [K, N] with N contiguous; B read transposed from [N, K] with K contiguous.
    let b4 = d.b_cs == 1 && d.n % 4 == 0 && d.b_rs % 4 == 0 && d.b_bs % 4 == 0;
    let bt4 = d.b_rs == 1 && d.k % 4 == 0 && d.b_cs % 4 == 0 && d.b_bs % 4 == 0;
    if rows && force != "tiles" && d.m <= 16 && !a4 && b4 && d.n >= 64 {
        // A thin product whose A cannot be read by vec4 (the weight gradient of a 10-row
        // weight): lanes own columns and share A's few rows.
        return MatmulVariant::new(MatmulRows, "cols_m16t2", 64, 16);
    }
    if rows && force != "tiles" && d.m >= 32 {
        // Four rows per lane (32-row blocks); KILN_MATMUL=r8 takes the 64-row blocks of eight
        // rows per lane instead. On the 2-core AMD EPYC of 2026-11-30 four rows won everywhere:
        // n=1024 61-63 -> 76-79 GFLOP/s, the MLP's products 57-64 -> 73-86 (PERFORMANCE.md).
        let r8 = force == "r8";
        let pick = |four: &'static str, eight: &'static str, cols: usize| {
            if r8 {
                MatmulVariant::new(MatmulRows, eight, cols, 64)
            } else {
                MatmulVariant::new(MatmulRows, four, cols, 32)
            }
        };
        if a4 && b4 && d.n >= 16 {
            // 64 columns per subgroup from 64 columns up (n=1024 with 8 rows: 49 -> 60 GFLOP/s).
            return if d.n >= 64 && force != "nn32" {
                pick("nn_r4t2", "nn_r8t2", 64)
            } else {
                pick("nn_r4t1", "nn_r8t1", 32)
            };
        }
        if a4 && bt4 {
            // 64 columns from 64 up (with 8 rows: the MLP's x.W1^T 56 -> 64 GFLOP/s).
            return if d.n >= 64 {
                pick("nt_r4t8", "nt_r8t8", 64)
            } else if d.n > 16 {
                pick("nt_r4t4", "nt_r8t4", 32)
            } else {
                // Eight rows per lane here either way (the MLP's h.W3^T, 256x10x512: 19-23
                // GFLOP/s against 15-21 with four).
                MatmulVariant::new(MatmulRows, "nt_r8t2", 16, 64)
            };
        }
        if at4 && b4 && d.n >= 16 {
            // From 64 columns up, 64 rows x 32 columns (the MLP's weight gradients, three
            // interleaved runs: 80-85 GFLOP/s with 32 x 64, 85-87 with 64 x 32, 58-62 with 64 x 64).
            return if d.n >= 64 {
                if r8 {
                    MatmulVariant::new(MatmulRows, "tn_r8t2", 64, 64)
                } else {
                    MatmulVariant::new(MatmulRows, "tn_r8t1", 32, 64)
                }
            } else {
                pick("tn_r4t1", "tn_r8t1", 32)
            };
        }
        if b4 && d.n >= 64 {
            // Any other A (a K such as 10): one value of K at a time, A by scalar loads.
            return pick("nn1_r4t2", "nn1_r8t2", 64);
        }
    }
    let big = d.m >= 32 && d.n >= 32;
    // 16-row tiles once M can fill them.
    let tall = d.m >= 64;
    if big && a4 && b4 {
        return if tall {
            MatmulVariant::new(MatmulVec4, "nn16", 64, 128)
        } else {
            MatmulVariant::new(MatmulVec4, "nn", 64, 64)
        };
    }
    if big && a4 && bt4 {
        return if tall {
            MatmulVariant::new(MatmulVec4, "nt16", 64, 128)
        } else {
            MatmulVariant::new(MatmulVec4, "nt", 64, 64)
        };
    }
    // A transposed times B plain: the weight gradient.
    if big && at4 && b4 {
        return MatmulVariant::new(MatmulVec4, "tn", 64, 64);
    }
    if d.m >= 64 && d.n >= 64 {
        MatmulVariant::new(Matmul, "matmul8", 64, 64)
    } else {
        MatmulVariant::new(Matmul, "matmul", 32, 32)
    }
}
