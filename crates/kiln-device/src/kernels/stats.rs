//! Launchers of `stats.wgsl`: per-tensor statistics and histograms.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::device::GpuDevice;
use crate::error::{DeviceError, DeviceResult};
use crate::pool::GpuBuffer;
use crate::recorder::grid_threads;
use crate::wgsl::Family;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct StatsParams {
    n: u32,
    slot: u32,
    bins: u32,
    off: u32,
    lo: f32,
    hi: f32,
    pad1: [f32; 2],
}

/// Words per tensor in a statistics buffer (see `stats.wgsl`).
pub const STATS_WORDS: usize = 12;

/// Records the statistics of `n` f32 elements of `x` into `out` at `slot` (12 words per slot:
/// n_finite, mean, M2, min, max, sum of squares as f32 bits, then zero/NaN/Inf counts). Many
/// tensors can share one `out`, read back once.
pub fn tensor_stats(dev: &GpuDevice, x: &GpuBuffer, n: usize, out: &GpuBuffer, slot: usize) -> DeviceResult<()> {
    u32_of("stats", n)?;
    let pipe = dev.cx().pipeline(Family::Stats, "stats", &[])?;
    // Blocks of STATS_BLOCK: an invocation walks STATS_BLOCK / 256 elements per dispatch.
    let mut off = 0;
    loop {
        let end = (off + STATS_BLOCK).min(n);
        let params = StatsParams {
            n: end as u32,
            slot: u32_of("stats", slot)?,
            bins: 0,
            off: off as u32,
            lo: 0.0,
            hi: 0.0,
            pad1: [0.0; 2],
        };
        dev.record(&pipe, &[x.raw(), out.raw()], bytemuck::bytes_of(&params), [1, 1, 1])?;
        if end >= n {
            return Ok(());
        }
        off = end;
    }
}

/// Elements per `stats` dispatch: 256 invocations, [`super::LOOP_BUDGET`] / 2 loop
/// iterations each.
const STATS_BLOCK: usize = super::LOOP_BUDGET / 2 * 256;

/// A histogram of the finite elements of `x` in `bins` equal bins over [lo, hi].
pub fn histogram(dev: &GpuDevice, x: &GpuBuffer, n: usize, bins: usize, lo: f32, hi: f32) -> DeviceResult<GpuBuffer> {
    if bins == 0 {
        return Err(DeviceError::Launch { op: "histogram", msg: "at least one bin".into() });
    }
    let counts = dev.upload(&vec![0u8; bins * 4], "histogram")?;
    let params = StatsParams {
        n: u32_of("histogram", n)?,
        slot: 0,
        bins: u32_of("histogram", bins)?,
        off: 0,
        lo,
        hi,
        pad1: [0.0; 2],
    };
    let pipe = dev.cx().pipeline(Family::Stats, "histogram", &[])?;
    dev.record(&pipe, &[x.raw(), counts.raw()], bytemuck::bytes_of(&params), grid_threads(dev.cx(), n)?)?;
    Ok(counts)
}
