//! Matmul epilogues: the elementwise ops that follow a matmul (a linear layer's bias add and
//! ReLU, the ReLU mask applied to the gradient a backward matmul produces) run inside the
//! matmul kernel's stores instead of as a kernel of their own.
//!
//! [`crate::kernels::matmul`] hands a product computed by one of the subgroup kernels of
//! `matmul_rows.wgsl` to [`GpuDevice::matmul_launch`], which opens a fusion chain (`fuse/`)
//! whose op 0 is the product. Elementwise ops that read a result of that chain join it as they
//! join any chain; ops that do not, close it. When the chain closes with ops beyond the product,
//! it is recorded as one generated kernel: the matmul kernel's text, with a loop appended after
//! its stores in which the workgroup's lanes walk the block of C it has just stored, compute the
//! chain on each element (or vec4) and store every result still referenced. Otherwise the plain
//! matmul is recorded (or nothing, if its product was dropped unread).
//!
//! Why a loop over the stored block rather than the chain inside each store: the kernels store
//! 64 to 512 values per lane from named accumulators, and the chain (with the per-lane load
//! loops a software adapter compiles every buffer read into) inlined at each store made one
//! kernel take seconds to compile (the digits example: 2.8 s -> 33 s on a cold shader cache).
//! The loop compiles the chain once; the block is re-read from cache, not memory.
//!
//! What it saves, per fused op: one dispatch and one pass over the product through memory. The
//! other kernels (the vec4 tiles of real GPUs) are not fused. Off by default
//! ([`GpuDevice::set_matmul_epilogues`]): on llvmpipe the saving is within the noise of a
//! training step, and every chain shape compiles a copy of its matmul kernel.

use crate::context::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::fuse::{Chain, LaunchFn, Plan, enabled};
use crate::pool::GpuBuffer;

/// The kernels an epilogue is generated from.
const ROWS: &str = include_str!("../../../shaders/matmul_rows.wgsl");

/// A matmul launch that a chain can take over: its kernel, operands, uniform and grid.
pub(crate) struct Head {
    /// The kernel and its block of C.
    pub(crate) kernel: HeadKernel,
    /// Operand A (binding 0).
    pub(crate) a: wgpu::Buffer,
    /// Operand B (binding 1).
    pub(crate) b: wgpu::Buffer,
    /// The matmul's uniform (`Params` of `matmul_rows.wgsl`, 64 bytes).
    pub(crate) params: Vec<u8>,
    /// Workgroups in x, y, z.
    pub(crate) groups: [u32; 3],
    /// N % 4 == 0: the epilogue runs four elements per step (rows are whole vec4s).
    pub(crate) four: bool,
}

/// A kernel of `matmul_rows.wgsl` and the block of C each workgroup stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadKernel {
    /// The kernel's entry point.
    pub(crate) entry: &'static str,
    /// Rows of C per workgroup (from `wg.y * rows`).
    pub(crate) rows: u32,
    /// Columns of C per workgroup (from `wg.x * cols`; a multiple of 4).
    pub(crate) cols: u32,
}

/// Kernel `entry` of `matmul_rows.wgsl`, from its attribute line to its closing brace.
fn kernel_text(entry: &str) -> Option<&'static str> {
    let at = ROWS.find(&format!("\nfn {entry}("))? + 1;
    let start = ROWS[..at - 1].rfind('\n')? + 1;
    let end = at + ROWS[at..].find("\n}\n")? + 3;
    Some(&ROWS[start..end])
}

/// The WGSL of `plan` run at the end of matmul kernel `h`: the chain's functions, the matmul's
/// `Params` with the chain's column counts and scalars after it, A, B and the product at
/// bindings 0-2, the chain's other buffers from 3, the uniform last, then the kernel with the
/// chain's loop over its block of C before its closing brace.
pub(crate) fn source(plan: &Plan, h: HeadKernel) -> DeviceResult<String> {
    let missing = || DeviceError::Launch { op: "matmul", msg: format!("no kernel {} in matmul_rows.wgsl", h.entry) };
    let kernel = kernel_text(h.entry).ok_or_else(missing)?;
    let start = ROWS.find("struct Params {").ok_or_else(missing)?;
    let end = start + ROWS[start..].find("\n}\n").ok_or_else(missing)?;
    let params =
        format!("{}\n    cols: array<vec4<u32>, 4>,\n    alpha: array<vec4<f32>, 8>,\n}}\n", &ROWS[start..end]);
    // The file's store functions (to c, c4 at binding 2).
    let stores =
        &ROWS[ROWS.find("\nfn store1(").ok_or_else(missing)? + 1..ROWS.find("\n@compute").ok_or_else(missing)?];
    let ty = plan.ty();
    let mut out = plan.prelude() + &params;
    out.push_str("@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;\n");
    out.push_str("@group(0) @binding(1) var<storage, read_write> b: array<vec4<f32>>;\n");
    out.push_str("@group(0) @binding(0) var<storage, read_write> a_s: array<f32>;\n");
    out.push_str("@group(0) @binding(2) var<storage, read_write> c: array<f32>;\n");
    out.push_str("@group(0) @binding(2) var<storage, read_write> c4: array<vec4<f32>>;\n");
    for s in 3..plan.slots {
        out.push_str(&format!("@group(0) @binding({s}) var<storage, read_write> s{s}: array<{ty}>;\n"));
    }
    out.push_str(&format!("@group(0) @binding({}) var<uniform> p: Params;\n", plan.slots));
    out.push_str(stores);
    out.push_str(&kernel[..kernel.len() - 2]);
    // Lane `lane` takes elements (or vec4s) lane, lane + 8, ... of the workgroup's block.
    let w = if plan.four { h.cols / 4 } else { h.cols };
    // The product, read through the view the kernel stores by (two views of one binding may
    // not both be used by one entry point).
    let c = match (plan.four, kernel.contains("store4(")) {
        (true, true) => "c4[i]",
        (true, false) => "vec4<f32>(c[i * 4u], c[i * 4u + 1u], c[i * 4u + 2u], c[i * 4u + 3u])",
        (false, true) => "c4[i / 4u][i % 4u]",
        (false, false) => "c[i]",
    };
    let scale = if plan.four { " * 4u" } else { "" };
    out.push_str(&format!(
        "    storageBarrier();\n    for (var e = lane; e < {}u; e = e + 8u) {{\n        \
         let row = wg.y * {}u + e / {w}u;\n        let col = wg.x * {}u + (e % {w}u){scale};\n        \
         if (row < p.m && col < p.n) {{\n            let i = (wg.z * p.c_bs + row * p.n + col){};\n            \
         let v = {c};\n",
        h.rows * w,
        h.rows,
        h.cols,
        if plan.four { " / 4u" } else { "" },
    ));
    let slot = |s: usize| format!("s{s}");
    for line in plan.body(&slot, "            ") {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("        }\n    }\n}\n");
    Ok(out)
}

impl GpuDevice {
    /// Records a matmul's `launch` (writing `out`, `n` elements), or, when epilogues are on
    /// ([`GpuDevice::set_matmul_epilogues`]) and `head` is a kernel of `matmul_rows.wgsl`, opens
    /// a chain whose op 0 is its product, so that the elementwise ops that follow run in its
    /// kernel.
    pub(crate) fn matmul_launch(
        &self,
        launch: LaunchFn,
        head: Option<Head>,
        n: usize,
        out: &mut GpuBuffer,
    ) -> DeviceResult<()> {
        let mut p = self.inner.pending.lock().unwrap();
        self.close_chain(&mut p)?;
        match head {
            Some(head) if enabled() && self.matmul_epilogues() && kernel_text(head.kernel.entry).is_some() => {
                let four = head.four;
                p.chain = Some(Chain::with_head(head, launch, n, four, out));
                Ok(())
            }
            _ => {
                let l = launch(self, out.raw().clone())?;
                self.record_launch(&mut p, l)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every kernel of matmul_rows.wgsl.
    pub(crate) fn kernel_names() -> Vec<&'static str> {
        ROWS.split("@compute @workgroup_size(8)\nfn ").skip(1).filter_map(|k| k.split('(').next()).collect()
    }

    #[test]
    fn kernel_texts_are_whole_functions() {
        let names = kernel_names();
        assert!(names.len() > 10 && names.contains(&"nn_r4t2") && names.contains(&"cols_m16t2"), "{names:?}");
        for entry in names {
            let k = kernel_text(entry).unwrap();
            assert!(k.starts_with("@compute @workgroup_size(") && k.ends_with("\n}\n"), "{entry}");
            assert_eq!(k.matches("\nfn ").count(), 1, "{entry}");
        }
        assert!(kernel_text("nothing").is_none());
    }
}
