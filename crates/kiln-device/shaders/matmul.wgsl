// Matmul family: C[z] = op(A[z]) * op(B[z]) for z in 0..batch, any M, N, K.
// A and B are read through strides, so a transposed operand (A^T or B^T) is just other strides
// and backward never materialises a transpose; a batch stride of 0 broadcasts one operand over
// the batch. Each invocation computes a 4x4 block of C in registers (vec4 accumulators, one per
// row); rows and columns past the edge are clamped on load and masked on store, so no shape
// needs to be a multiple of the tile.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32, // first element of A (a block of the contracted dim)
    a_rs: u32,  // stride between rows of op(A)
    a_cs: u32,  // stride between columns of op(A)
    a_bs: u32,  // stride between batches of A (0 = broadcast)
    b_off: u32, // first element of B
    b_rs: u32,
    b_cs: u32,
    b_bs: u32,
    pad2: u32,
    c_bs: u32,
    pad3: u32,
    pad4: u32,
    pad5: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(8, 8)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let a_base = p.a_off + z * p.a_bs;
    let b_base = p.b_off + z * p.b_bs;
    // Clamped row / column offsets: loads stay in bounds, stores are masked below.
    let ar0 = a_base + min(row0, p.m - 1u) * p.a_rs;
    let ar1 = a_base + min(row0 + 1u, p.m - 1u) * p.a_rs;
    let ar2 = a_base + min(row0 + 2u, p.m - 1u) * p.a_rs;
    let ar3 = a_base + min(row0 + 3u, p.m - 1u) * p.a_rs;
    let bc0 = b_base + min(col0, p.n - 1u) * p.b_cs;
    let bc1 = b_base + min(col0 + 1u, p.n - 1u) * p.b_cs;
    let bc2 = b_base + min(col0 + 2u, p.n - 1u) * p.b_cs;
    let bc3 = b_base + min(col0 + 3u, p.n - 1u) * p.b_cs;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var ka = 0u;
    var kb = 0u;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let bv = vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
        acc0 = fma(vec4<f32>(a[ar0 + ka]), bv, acc0);
        acc1 = fma(vec4<f32>(a[ar1 + ka]), bv, acc1);
        acc2 = fma(vec4<f32>(a[ar2 + ka]), bv, acc2);
        acc3 = fma(vec4<f32>(a[ar3 + ka]), bv, acc3);
        ka = ka + p.a_cs;
        kb = kb + p.b_rs;
    }
    let c_base = z * p.c_bs;
    store_row(c_base, row0, col0, acc0);
    store_row(c_base, row0 + 1u, col0, acc1);
    store_row(c_base, row0 + 2u, col0, acc2);
    store_row(c_base, row0 + 3u, col0, acc3);
}

fn store_row(c_base: u32, row: u32, col0: u32, v: vec4<f32>) {
    if (row >= p.m || col0 >= p.n) {
        return;
    }
    let o = c_base + row * p.n + col0;
    c[o] = v.x;
    if (col0 + 1u < p.n) { c[o + 1u] = v.y; }
    if (col0 + 2u < p.n) { c[o + 2u] = v.z; }
    if (col0 + 3u < p.n) { c[o + 3u] = v.w; }
}

// 8x8 variant: each invocation computes an 8x8 block of C (two vec4 accumulators per row), so
// each k step does 64 FMAs for 16 loads. Used when M and N are large enough to fill the grid.
@compute @workgroup_size(8, 8)
fn matmul8(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 8u;
    let col0 = gid.x * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let a_base = p.a_off + z * p.a_bs;
    let b_base = p.b_off + z * p.b_bs;
    let lm = p.m - 1u;
    let ln = p.n - 1u;
    let ar0 = a_base + min(row0 + 0u, lm) * p.a_rs;
    let ar1 = a_base + min(row0 + 1u, lm) * p.a_rs;
    let ar2 = a_base + min(row0 + 2u, lm) * p.a_rs;
    let ar3 = a_base + min(row0 + 3u, lm) * p.a_rs;
    let ar4 = a_base + min(row0 + 4u, lm) * p.a_rs;
    let ar5 = a_base + min(row0 + 5u, lm) * p.a_rs;
    let ar6 = a_base + min(row0 + 6u, lm) * p.a_rs;
    let ar7 = a_base + min(row0 + 7u, lm) * p.a_rs;
    let bc0 = b_base + min(col0 + 0u, ln) * p.b_cs;
    let bc1 = b_base + min(col0 + 1u, ln) * p.b_cs;
    let bc2 = b_base + min(col0 + 2u, ln) * p.b_cs;
    let bc3 = b_base + min(col0 + 3u, ln) * p.b_cs;
    let bc4 = b_base + min(col0 + 4u, ln) * p.b_cs;
    let bc5 = b_base + min(col0 + 5u, ln) * p.b_cs;
    let bc6 = b_base + min(col0 + 6u, ln) * p.b_cs;
    let bc7 = b_base + min(col0 + 7u, ln) * p.b_cs;
    var lo0 = vec4<f32>(0.0);
    var hi0 = vec4<f32>(0.0);
    var lo1 = vec4<f32>(0.0);
    var hi1 = vec4<f32>(0.0);
    var lo2 = vec4<f32>(0.0);
    var hi2 = vec4<f32>(0.0);
    var lo3 = vec4<f32>(0.0);
    var hi3 = vec4<f32>(0.0);
    var lo4 = vec4<f32>(0.0);
    var hi4 = vec4<f32>(0.0);
    var lo5 = vec4<f32>(0.0);
    var hi5 = vec4<f32>(0.0);
    var lo6 = vec4<f32>(0.0);
    var hi6 = vec4<f32>(0.0);
    var lo7 = vec4<f32>(0.0);
    var hi7 = vec4<f32>(0.0);
    var ka = 0u;
    var kb = 0u;
    for (var kk = 0u; kk < p.k; kk = kk + 1u) {
        let bl = vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
        let bh = vec4<f32>(b[bc4 + kb], b[bc5 + kb], b[bc6 + kb], b[bc7 + kb]);
        let a0 = vec4<f32>(a[ar0 + ka]);
        lo0 = fma(a0, bl, lo0);
        hi0 = fma(a0, bh, hi0);
        let a1 = vec4<f32>(a[ar1 + ka]);
        lo1 = fma(a1, bl, lo1);
        hi1 = fma(a1, bh, hi1);
        let a2 = vec4<f32>(a[ar2 + ka]);
        lo2 = fma(a2, bl, lo2);
        hi2 = fma(a2, bh, hi2);
        let a3 = vec4<f32>(a[ar3 + ka]);
        lo3 = fma(a3, bl, lo3);
        hi3 = fma(a3, bh, hi3);
        let a4 = vec4<f32>(a[ar4 + ka]);
        lo4 = fma(a4, bl, lo4);
        hi4 = fma(a4, bh, hi4);
        let a5 = vec4<f32>(a[ar5 + ka]);
        lo5 = fma(a5, bl, lo5);
        hi5 = fma(a5, bh, hi5);
        let a6 = vec4<f32>(a[ar6 + ka]);
        lo6 = fma(a6, bl, lo6);
        hi6 = fma(a6, bh, hi6);
        let a7 = vec4<f32>(a[ar7 + ka]);
        lo7 = fma(a7, bl, lo7);
        hi7 = fma(a7, bh, hi7);
        ka = ka + p.a_cs;
        kb = kb + p.b_rs;
    }
    let c_base = z * p.c_bs;
    store_row(c_base, row0 + 0u, col0, lo0);
    store_row(c_base, row0 + 0u, col0 + 4u, hi0);
    store_row(c_base, row0 + 1u, col0, lo1);
    store_row(c_base, row0 + 1u, col0 + 4u, hi1);
    store_row(c_base, row0 + 2u, col0, lo2);
    store_row(c_base, row0 + 2u, col0 + 4u, hi2);
    store_row(c_base, row0 + 3u, col0, lo3);
    store_row(c_base, row0 + 3u, col0 + 4u, hi3);
    store_row(c_base, row0 + 4u, col0, lo4);
    store_row(c_base, row0 + 4u, col0 + 4u, hi4);
    store_row(c_base, row0 + 5u, col0, lo5);
    store_row(c_base, row0 + 5u, col0 + 4u, hi5);
    store_row(c_base, row0 + 6u, col0, lo6);
    store_row(c_base, row0 + 6u, col0 + 4u, hi6);
    store_row(c_base, row0 + 7u, col0, lo7);
    store_row(c_base, row0 + 7u, col0 + 4u, hi7);
}
