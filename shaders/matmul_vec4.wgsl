// Matmul, vec4 variants: the same product as matmul.wgsl, for operands laid out so that four
// consecutive floats can be read as one vec4 (a quarter of the loads). Each invocation computes
// an 8x8 block of C. `nn`: B is [K, N] row-major with N % 4 == 0 (vec4 along N). `nt`: B is read
// transposed from an [N, K] row-major buffer (vec4 along K, dot products). Rows and columns past
// the edge are clamped on load and masked on store. Same Params as matmul.wgsl, strides in floats.

struct Params {
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
    pad3: u32,
    pad4: u32,
    pad5: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

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


@compute @workgroup_size(8, 8)
fn nn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 8u;
    let col0 = gid.x * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let lm = p.m - 1u;
    // Row offsets of A in vec4 units (a_rs and a_bs are multiples of 4).
    let ar0 = (z * p.a_bs + min(row0 + 0u, lm) * p.a_rs) / 4u;
    let ar1 = (z * p.a_bs + min(row0 + 1u, lm) * p.a_rs) / 4u;
    let ar2 = (z * p.a_bs + min(row0 + 2u, lm) * p.a_rs) / 4u;
    let ar3 = (z * p.a_bs + min(row0 + 3u, lm) * p.a_rs) / 4u;
    let ar4 = (z * p.a_bs + min(row0 + 4u, lm) * p.a_rs) / 4u;
    let ar5 = (z * p.a_bs + min(row0 + 5u, lm) * p.a_rs) / 4u;
    let ar6 = (z * p.a_bs + min(row0 + 6u, lm) * p.a_rs) / 4u;
    let ar7 = (z * p.a_bs + min(row0 + 7u, lm) * p.a_rs) / 4u;
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
    // B rows in vec4 units; the high half is clamped so that it stays in bounds when N % 8 == 4.
    let b_base = z * p.b_bs / 4u;
    let n4 = p.n / 4u;
    let rs4 = p.b_rs / 4u;
    let cl = col0 / 4u;
    let ch = min(col0 / 4u + 1u, n4 - 1u);
    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {
        let r0 = b_base + (k4 * 4u) * rs4;
        let bl0 = b[r0 + 0u * rs4 + cl];
        let bh0 = b[r0 + 0u * rs4 + ch];
        let bl1 = b[r0 + 1u * rs4 + cl];
        let bh1 = b[r0 + 1u * rs4 + ch];
        let bl2 = b[r0 + 2u * rs4 + cl];
        let bh2 = b[r0 + 2u * rs4 + ch];
        let bl3 = b[r0 + 3u * rs4 + cl];
        let bh3 = b[r0 + 3u * rs4 + ch];
        let a0 = a[ar0 + k4];
        lo0 = fma(vec4<f32>(a0.x), bl0, fma(vec4<f32>(a0.y), bl1, fma(vec4<f32>(a0.z), bl2, fma(vec4<f32>(a0.w), bl3, lo0))));
        hi0 = fma(vec4<f32>(a0.x), bh0, fma(vec4<f32>(a0.y), bh1, fma(vec4<f32>(a0.z), bh2, fma(vec4<f32>(a0.w), bh3, hi0))));
        let a1 = a[ar1 + k4];
        lo1 = fma(vec4<f32>(a1.x), bl0, fma(vec4<f32>(a1.y), bl1, fma(vec4<f32>(a1.z), bl2, fma(vec4<f32>(a1.w), bl3, lo1))));
        hi1 = fma(vec4<f32>(a1.x), bh0, fma(vec4<f32>(a1.y), bh1, fma(vec4<f32>(a1.z), bh2, fma(vec4<f32>(a1.w), bh3, hi1))));
        let a2 = a[ar2 + k4];
        lo2 = fma(vec4<f32>(a2.x), bl0, fma(vec4<f32>(a2.y), bl1, fma(vec4<f32>(a2.z), bl2, fma(vec4<f32>(a2.w), bl3, lo2))));
        hi2 = fma(vec4<f32>(a2.x), bh0, fma(vec4<f32>(a2.y), bh1, fma(vec4<f32>(a2.z), bh2, fma(vec4<f32>(a2.w), bh3, hi2))));
        let a3 = a[ar3 + k4];
        lo3 = fma(vec4<f32>(a3.x), bl0, fma(vec4<f32>(a3.y), bl1, fma(vec4<f32>(a3.z), bl2, fma(vec4<f32>(a3.w), bl3, lo3))));
        hi3 = fma(vec4<f32>(a3.x), bh0, fma(vec4<f32>(a3.y), bh1, fma(vec4<f32>(a3.z), bh2, fma(vec4<f32>(a3.w), bh3, hi3))));
        let a4 = a[ar4 + k4];
        lo4 = fma(vec4<f32>(a4.x), bl0, fma(vec4<f32>(a4.y), bl1, fma(vec4<f32>(a4.z), bl2, fma(vec4<f32>(a4.w), bl3, lo4))));
        hi4 = fma(vec4<f32>(a4.x), bh0, fma(vec4<f32>(a4.y), bh1, fma(vec4<f32>(a4.z), bh2, fma(vec4<f32>(a4.w), bh3, hi4))));
        let a5 = a[ar5 + k4];
        lo5 = fma(vec4<f32>(a5.x), bl0, fma(vec4<f32>(a5.y), bl1, fma(vec4<f32>(a5.z), bl2, fma(vec4<f32>(a5.w), bl3, lo5))));
        hi5 = fma(vec4<f32>(a5.x), bh0, fma(vec4<f32>(a5.y), bh1, fma(vec4<f32>(a5.z), bh2, fma(vec4<f32>(a5.w), bh3, hi5))));
        let a6 = a[ar6 + k4];
        lo6 = fma(vec4<f32>(a6.x), bl0, fma(vec4<f32>(a6.y), bl1, fma(vec4<f32>(a6.z), bl2, fma(vec4<f32>(a6.w), bl3, lo6))));
        hi6 = fma(vec4<f32>(a6.x), bh0, fma(vec4<f32>(a6.y), bh1, fma(vec4<f32>(a6.z), bh2, fma(vec4<f32>(a6.w), bh3, hi6))));
        let a7 = a[ar7 + k4];
        lo7 = fma(vec4<f32>(a7.x), bl0, fma(vec4<f32>(a7.y), bl1, fma(vec4<f32>(a7.z), bl2, fma(vec4<f32>(a7.w), bl3, lo7))));
        hi7 = fma(vec4<f32>(a7.x), bh0, fma(vec4<f32>(a7.y), bh1, fma(vec4<f32>(a7.z), bh2, fma(vec4<f32>(a7.w), bh3, hi7))));
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

@compute @workgroup_size(8, 8)
fn nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 8u;
    let col0 = gid.x * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let lm = p.m - 1u;
    // Row offsets of A in vec4 units (a_rs and a_bs are multiples of 4).
    let ar0 = (z * p.a_bs + min(row0 + 0u, lm) * p.a_rs) / 4u;
    let ar1 = (z * p.a_bs + min(row0 + 1u, lm) * p.a_rs) / 4u;
    let ar2 = (z * p.a_bs + min(row0 + 2u, lm) * p.a_rs) / 4u;
    let ar3 = (z * p.a_bs + min(row0 + 3u, lm) * p.a_rs) / 4u;
    let ar4 = (z * p.a_bs + min(row0 + 4u, lm) * p.a_rs) / 4u;
    let ar5 = (z * p.a_bs + min(row0 + 5u, lm) * p.a_rs) / 4u;
    let ar6 = (z * p.a_bs + min(row0 + 6u, lm) * p.a_rs) / 4u;
    let ar7 = (z * p.a_bs + min(row0 + 7u, lm) * p.a_rs) / 4u;
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
    let ln = p.n - 1u;
    // Columns of op(B) are rows of the stored [N, K] buffer, in vec4 units.
    let bc0 = (z * p.b_bs + min(col0 + 0u, ln) * p.b_cs) / 4u;
    let bc1 = (z * p.b_bs + min(col0 + 1u, ln) * p.b_cs) / 4u;
    let bc2 = (z * p.b_bs + min(col0 + 2u, ln) * p.b_cs) / 4u;
    let bc3 = (z * p.b_bs + min(col0 + 3u, ln) * p.b_cs) / 4u;
    let bc4 = (z * p.b_bs + min(col0 + 4u, ln) * p.b_cs) / 4u;
    let bc5 = (z * p.b_bs + min(col0 + 5u, ln) * p.b_cs) / 4u;
    let bc6 = (z * p.b_bs + min(col0 + 6u, ln) * p.b_cs) / 4u;
    let bc7 = (z * p.b_bs + min(col0 + 7u, ln) * p.b_cs) / 4u;
    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {
        let b0 = b[bc0 + k4];
        let b1 = b[bc1 + k4];
        let b2 = b[bc2 + k4];
        let b3 = b[bc3 + k4];
        let b4 = b[bc4 + k4];
        let b5 = b[bc5 + k4];
        let b6 = b[bc6 + k4];
        let b7 = b[bc7 + k4];
        let a0 = a[ar0 + k4];
        lo0 = lo0 + vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
        hi0 = hi0 + vec4<f32>(dot(a0, b4), dot(a0, b5), dot(a0, b6), dot(a0, b7));
        let a1 = a[ar1 + k4];
        lo1 = lo1 + vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
        hi1 = hi1 + vec4<f32>(dot(a1, b4), dot(a1, b5), dot(a1, b6), dot(a1, b7));
        let a2 = a[ar2 + k4];
        lo2 = lo2 + vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
        hi2 = hi2 + vec4<f32>(dot(a2, b4), dot(a2, b5), dot(a2, b6), dot(a2, b7));
        let a3 = a[ar3 + k4];
        lo3 = lo3 + vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
        hi3 = hi3 + vec4<f32>(dot(a3, b4), dot(a3, b5), dot(a3, b6), dot(a3, b7));
        let a4 = a[ar4 + k4];
        lo4 = lo4 + vec4<f32>(dot(a4, b0), dot(a4, b1), dot(a4, b2), dot(a4, b3));
        hi4 = hi4 + vec4<f32>(dot(a4, b4), dot(a4, b5), dot(a4, b6), dot(a4, b7));
        let a5 = a[ar5 + k4];
        lo5 = lo5 + vec4<f32>(dot(a5, b0), dot(a5, b1), dot(a5, b2), dot(a5, b3));
        hi5 = hi5 + vec4<f32>(dot(a5, b4), dot(a5, b5), dot(a5, b6), dot(a5, b7));
        let a6 = a[ar6 + k4];
        lo6 = lo6 + vec4<f32>(dot(a6, b0), dot(a6, b1), dot(a6, b2), dot(a6, b3));
        hi6 = hi6 + vec4<f32>(dot(a6, b4), dot(a6, b5), dot(a6, b6), dot(a6, b7));
        let a7 = a[ar7 + k4];
        lo7 = lo7 + vec4<f32>(dot(a7, b0), dot(a7, b1), dot(a7, b2), dot(a7, b3));
        hi7 = hi7 + vec4<f32>(dot(a7, b4), dot(a7, b5), dot(a7, b6), dot(a7, b7));
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

// `tn`: A read transposed from a [K, M] row-major buffer (vec4 along M), B a [K, N] row-major
// buffer (vec4 along N): each k step is an outer product of 8 values of A and 8 of B, from four
// vec4 loads. Needs M % 4 == 0 and N % 4 == 0 (backward's weight gradient, A^T G).
@compute @workgroup_size(8, 8)
fn tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 8u;
    let col0 = gid.x * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    let a_base = z * p.a_bs / 4u;
    let b_base = z * p.b_bs / 4u;
    let ars4 = p.a_cs / 4u;
    let brs4 = p.b_rs / 4u;
    // Column blocks clamped so that both halves stay in bounds when M or N % 8 == 4.
    let al = row0 / 4u;
    let ah = min(row0 / 4u + 1u, m4 - 1u);
    let bl = col0 / 4u;
    let bh = min(col0 / 4u + 1u, n4 - 1u);
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
    for (var k = 0u; k < p.k; k = k + 1u) {
        let a0 = a[a_base + k * ars4 + al];
        let a1 = a[a_base + k * ars4 + ah];
        let b0 = b[b_base + k * brs4 + bl];
        let b1 = b[b_base + k * brs4 + bh];
        lo0 = fma(vec4<f32>(a0.x), b0, lo0);
        hi0 = fma(vec4<f32>(a0.x), b1, hi0);
        lo1 = fma(vec4<f32>(a0.y), b0, lo1);
        hi1 = fma(vec4<f32>(a0.y), b1, hi1);
        lo2 = fma(vec4<f32>(a0.z), b0, lo2);
        hi2 = fma(vec4<f32>(a0.z), b1, hi2);
        lo3 = fma(vec4<f32>(a0.w), b0, lo3);
        hi3 = fma(vec4<f32>(a0.w), b1, hi3);
        lo4 = fma(vec4<f32>(a1.x), b0, lo4);
        hi4 = fma(vec4<f32>(a1.x), b1, hi4);
        lo5 = fma(vec4<f32>(a1.y), b0, lo5);
        hi5 = fma(vec4<f32>(a1.y), b1, hi5);
        lo6 = fma(vec4<f32>(a1.z), b0, lo6);
        hi6 = fma(vec4<f32>(a1.z), b1, hi6);
        lo7 = fma(vec4<f32>(a1.w), b0, lo7);
        hi7 = fma(vec4<f32>(a1.w), b1, hi7);
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

// `nn16`: as `nn` with 16 rows x 8 columns per invocation: twice the FMAs for each
// gathered vector of B (A's loads are shared by the invocation's rows). Chosen for M >= 64.
@compute @workgroup_size(8, 8)
fn nn16(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 16u;
    let col0 = gid.x * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let lm = p.m - 1u;
    let ar0 = (z * p.a_bs + min(row0 + 0u, lm) * p.a_rs) / 4u;
    let ar1 = (z * p.a_bs + min(row0 + 1u, lm) * p.a_rs) / 4u;
    let ar2 = (z * p.a_bs + min(row0 + 2u, lm) * p.a_rs) / 4u;
    let ar3 = (z * p.a_bs + min(row0 + 3u, lm) * p.a_rs) / 4u;
    let ar4 = (z * p.a_bs + min(row0 + 4u, lm) * p.a_rs) / 4u;
    let ar5 = (z * p.a_bs + min(row0 + 5u, lm) * p.a_rs) / 4u;
    let ar6 = (z * p.a_bs + min(row0 + 6u, lm) * p.a_rs) / 4u;
    let ar7 = (z * p.a_bs + min(row0 + 7u, lm) * p.a_rs) / 4u;
    let ar8 = (z * p.a_bs + min(row0 + 8u, lm) * p.a_rs) / 4u;
    let ar9 = (z * p.a_bs + min(row0 + 9u, lm) * p.a_rs) / 4u;
    let ar10 = (z * p.a_bs + min(row0 + 10u, lm) * p.a_rs) / 4u;
    let ar11 = (z * p.a_bs + min(row0 + 11u, lm) * p.a_rs) / 4u;
    let ar12 = (z * p.a_bs + min(row0 + 12u, lm) * p.a_rs) / 4u;
    let ar13 = (z * p.a_bs + min(row0 + 13u, lm) * p.a_rs) / 4u;
    let ar14 = (z * p.a_bs + min(row0 + 14u, lm) * p.a_rs) / 4u;
    let ar15 = (z * p.a_bs + min(row0 + 15u, lm) * p.a_rs) / 4u;
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
    var lo8 = vec4<f32>(0.0);
    var hi8 = vec4<f32>(0.0);
    var lo9 = vec4<f32>(0.0);
    var hi9 = vec4<f32>(0.0);
    var lo10 = vec4<f32>(0.0);
    var hi10 = vec4<f32>(0.0);
    var lo11 = vec4<f32>(0.0);
    var hi11 = vec4<f32>(0.0);
    var lo12 = vec4<f32>(0.0);
    var hi12 = vec4<f32>(0.0);
    var lo13 = vec4<f32>(0.0);
    var hi13 = vec4<f32>(0.0);
    var lo14 = vec4<f32>(0.0);
    var hi14 = vec4<f32>(0.0);
    var lo15 = vec4<f32>(0.0);
    var hi15 = vec4<f32>(0.0);
    let b_base = z * p.b_bs / 4u;
    let n4 = p.n / 4u;
    let rs4 = p.b_rs / 4u;
    let cl = col0 / 4u;
    let ch = min(col0 / 4u + 1u, n4 - 1u);
    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {
        let r0 = b_base + (k4 * 4u) * rs4;
        let bl0 = b[r0 + 0u * rs4 + cl];
        let bh0 = b[r0 + 0u * rs4 + ch];
        let bl1 = b[r0 + 1u * rs4 + cl];
        let bh1 = b[r0 + 1u * rs4 + ch];
        let bl2 = b[r0 + 2u * rs4 + cl];
        let bh2 = b[r0 + 2u * rs4 + ch];
        let bl3 = b[r0 + 3u * rs4 + cl];
        let bh3 = b[r0 + 3u * rs4 + ch];
        let a0 = a[ar0 + k4];
        lo0 = fma(vec4<f32>(a0.x), bl0, fma(vec4<f32>(a0.y), bl1, fma(vec4<f32>(a0.z), bl2, fma(vec4<f32>(a0.w), bl3, lo0))));
        hi0 = fma(vec4<f32>(a0.x), bh0, fma(vec4<f32>(a0.y), bh1, fma(vec4<f32>(a0.z), bh2, fma(vec4<f32>(a0.w), bh3, hi0))));
        let a1 = a[ar1 + k4];
        lo1 = fma(vec4<f32>(a1.x), bl0, fma(vec4<f32>(a1.y), bl1, fma(vec4<f32>(a1.z), bl2, fma(vec4<f32>(a1.w), bl3, lo1))));
        hi1 = fma(vec4<f32>(a1.x), bh0, fma(vec4<f32>(a1.y), bh1, fma(vec4<f32>(a1.z), bh2, fma(vec4<f32>(a1.w), bh3, hi1))));
        let a2 = a[ar2 + k4];
        lo2 = fma(vec4<f32>(a2.x), bl0, fma(vec4<f32>(a2.y), bl1, fma(vec4<f32>(a2.z), bl2, fma(vec4<f32>(a2.w), bl3, lo2))));
        hi2 = fma(vec4<f32>(a2.x), bh0, fma(vec4<f32>(a2.y), bh1, fma(vec4<f32>(a2.z), bh2, fma(vec4<f32>(a2.w), bh3, hi2))));
        let a3 = a[ar3 + k4];
        lo3 = fma(vec4<f32>(a3.x), bl0, fma(vec4<f32>(a3.y), bl1, fma(vec4<f32>(a3.z), bl2, fma(vec4<f32>(a3.w), bl3, lo3))));
        hi3 = fma(vec4<f32>(a3.x), bh0, fma(vec4<f32>(a3.y), bh1, fma(vec4<f32>(a3.z), bh2, fma(vec4<f32>(a3.w), bh3, hi3))));
        let a4 = a[ar4 + k4];
        lo4 = fma(vec4<f32>(a4.x), bl0, fma(vec4<f32>(a4.y), bl1, fma(vec4<f32>(a4.z), bl2, fma(vec4<f32>(a4.w), bl3, lo4))));
        hi4 = fma(vec4<f32>(a4.x), bh0, fma(vec4<f32>(a4.y), bh1, fma(vec4<f32>(a4.z), bh2, fma(vec4<f32>(a4.w), bh3, hi4))));
        let a5 = a[ar5 + k4];
        lo5 = fma(vec4<f32>(a5.x), bl0, fma(vec4<f32>(a5.y), bl1, fma(vec4<f32>(a5.z), bl2, fma(vec4<f32>(a5.w), bl3, lo5))));
        hi5 = fma(vec4<f32>(a5.x), bh0, fma(vec4<f32>(a5.y), bh1, fma(vec4<f32>(a5.z), bh2, fma(vec4<f32>(a5.w), bh3, hi5))));
        let a6 = a[ar6 + k4];
        lo6 = fma(vec4<f32>(a6.x), bl0, fma(vec4<f32>(a6.y), bl1, fma(vec4<f32>(a6.z), bl2, fma(vec4<f32>(a6.w), bl3, lo6))));
        hi6 = fma(vec4<f32>(a6.x), bh0, fma(vec4<f32>(a6.y), bh1, fma(vec4<f32>(a6.z), bh2, fma(vec4<f32>(a6.w), bh3, hi6))));
        let a7 = a[ar7 + k4];
        lo7 = fma(vec4<f32>(a7.x), bl0, fma(vec4<f32>(a7.y), bl1, fma(vec4<f32>(a7.z), bl2, fma(vec4<f32>(a7.w), bl3, lo7))));
        hi7 = fma(vec4<f32>(a7.x), bh0, fma(vec4<f32>(a7.y), bh1, fma(vec4<f32>(a7.z), bh2, fma(vec4<f32>(a7.w), bh3, hi7))));
        let a8 = a[ar8 + k4];
        lo8 = fma(vec4<f32>(a8.x), bl0, fma(vec4<f32>(a8.y), bl1, fma(vec4<f32>(a8.z), bl2, fma(vec4<f32>(a8.w), bl3, lo8))));
        hi8 = fma(vec4<f32>(a8.x), bh0, fma(vec4<f32>(a8.y), bh1, fma(vec4<f32>(a8.z), bh2, fma(vec4<f32>(a8.w), bh3, hi8))));
        let a9 = a[ar9 + k4];
        lo9 = fma(vec4<f32>(a9.x), bl0, fma(vec4<f32>(a9.y), bl1, fma(vec4<f32>(a9.z), bl2, fma(vec4<f32>(a9.w), bl3, lo9))));
        hi9 = fma(vec4<f32>(a9.x), bh0, fma(vec4<f32>(a9.y), bh1, fma(vec4<f32>(a9.z), bh2, fma(vec4<f32>(a9.w), bh3, hi9))));
        let a10 = a[ar10 + k4];
        lo10 = fma(vec4<f32>(a10.x), bl0, fma(vec4<f32>(a10.y), bl1, fma(vec4<f32>(a10.z), bl2, fma(vec4<f32>(a10.w), bl3, lo10))));
        hi10 = fma(vec4<f32>(a10.x), bh0, fma(vec4<f32>(a10.y), bh1, fma(vec4<f32>(a10.z), bh2, fma(vec4<f32>(a10.w), bh3, hi10))));
        let a11 = a[ar11 + k4];
        lo11 = fma(vec4<f32>(a11.x), bl0, fma(vec4<f32>(a11.y), bl1, fma(vec4<f32>(a11.z), bl2, fma(vec4<f32>(a11.w), bl3, lo11))));
        hi11 = fma(vec4<f32>(a11.x), bh0, fma(vec4<f32>(a11.y), bh1, fma(vec4<f32>(a11.z), bh2, fma(vec4<f32>(a11.w), bh3, hi11))));
        let a12 = a[ar12 + k4];
        lo12 = fma(vec4<f32>(a12.x), bl0, fma(vec4<f32>(a12.y), bl1, fma(vec4<f32>(a12.z), bl2, fma(vec4<f32>(a12.w), bl3, lo12))));
        hi12 = fma(vec4<f32>(a12.x), bh0, fma(vec4<f32>(a12.y), bh1, fma(vec4<f32>(a12.z), bh2, fma(vec4<f32>(a12.w), bh3, hi12))));
        let a13 = a[ar13 + k4];
        lo13 = fma(vec4<f32>(a13.x), bl0, fma(vec4<f32>(a13.y), bl1, fma(vec4<f32>(a13.z), bl2, fma(vec4<f32>(a13.w), bl3, lo13))));
        hi13 = fma(vec4<f32>(a13.x), bh0, fma(vec4<f32>(a13.y), bh1, fma(vec4<f32>(a13.z), bh2, fma(vec4<f32>(a13.w), bh3, hi13))));
        let a14 = a[ar14 + k4];
        lo14 = fma(vec4<f32>(a14.x), bl0, fma(vec4<f32>(a14.y), bl1, fma(vec4<f32>(a14.z), bl2, fma(vec4<f32>(a14.w), bl3, lo14))));
        hi14 = fma(vec4<f32>(a14.x), bh0, fma(vec4<f32>(a14.y), bh1, fma(vec4<f32>(a14.z), bh2, fma(vec4<f32>(a14.w), bh3, hi14))));
        let a15 = a[ar15 + k4];
        lo15 = fma(vec4<f32>(a15.x), bl0, fma(vec4<f32>(a15.y), bl1, fma(vec4<f32>(a15.z), bl2, fma(vec4<f32>(a15.w), bl3, lo15))));
        hi15 = fma(vec4<f32>(a15.x), bh0, fma(vec4<f32>(a15.y), bh1, fma(vec4<f32>(a15.z), bh2, fma(vec4<f32>(a15.w), bh3, hi15))));
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
    store_row(c_base, row0 + 8u, col0, lo8);
    store_row(c_base, row0 + 8u, col0 + 4u, hi8);
    store_row(c_base, row0 + 9u, col0, lo9);
    store_row(c_base, row0 + 9u, col0 + 4u, hi9);
    store_row(c_base, row0 + 10u, col0, lo10);
    store_row(c_base, row0 + 10u, col0 + 4u, hi10);
    store_row(c_base, row0 + 11u, col0, lo11);
    store_row(c_base, row0 + 11u, col0 + 4u, hi11);
    store_row(c_base, row0 + 12u, col0, lo12);
    store_row(c_base, row0 + 12u, col0 + 4u, hi12);
    store_row(c_base, row0 + 13u, col0, lo13);
    store_row(c_base, row0 + 13u, col0 + 4u, hi13);
    store_row(c_base, row0 + 14u, col0, lo14);
    store_row(c_base, row0 + 14u, col0 + 4u, hi14);
    store_row(c_base, row0 + 15u, col0, lo15);
    store_row(c_base, row0 + 15u, col0 + 4u, hi15);
}

// `nt16`: as `nt` with 16 rows x 8 columns per invocation: twice the FMAs for each
// gathered vector of B (A's loads are shared by the invocation's rows). Chosen for M >= 64.
@compute @workgroup_size(8, 8)
fn nt16(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 16u;
    let col0 = gid.x * 8u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    let z = gid.z;
    let lm = p.m - 1u;
    let ar0 = (z * p.a_bs + min(row0 + 0u, lm) * p.a_rs) / 4u;
    let ar1 = (z * p.a_bs + min(row0 + 1u, lm) * p.a_rs) / 4u;
    let ar2 = (z * p.a_bs + min(row0 + 2u, lm) * p.a_rs) / 4u;
    let ar3 = (z * p.a_bs + min(row0 + 3u, lm) * p.a_rs) / 4u;
    let ar4 = (z * p.a_bs + min(row0 + 4u, lm) * p.a_rs) / 4u;
    let ar5 = (z * p.a_bs + min(row0 + 5u, lm) * p.a_rs) / 4u;
    let ar6 = (z * p.a_bs + min(row0 + 6u, lm) * p.a_rs) / 4u;
    let ar7 = (z * p.a_bs + min(row0 + 7u, lm) * p.a_rs) / 4u;
    let ar8 = (z * p.a_bs + min(row0 + 8u, lm) * p.a_rs) / 4u;
    let ar9 = (z * p.a_bs + min(row0 + 9u, lm) * p.a_rs) / 4u;
    let ar10 = (z * p.a_bs + min(row0 + 10u, lm) * p.a_rs) / 4u;
    let ar11 = (z * p.a_bs + min(row0 + 11u, lm) * p.a_rs) / 4u;
    let ar12 = (z * p.a_bs + min(row0 + 12u, lm) * p.a_rs) / 4u;
    let ar13 = (z * p.a_bs + min(row0 + 13u, lm) * p.a_rs) / 4u;
    let ar14 = (z * p.a_bs + min(row0 + 14u, lm) * p.a_rs) / 4u;
    let ar15 = (z * p.a_bs + min(row0 + 15u, lm) * p.a_rs) / 4u;
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
    var lo8 = vec4<f32>(0.0);
    var hi8 = vec4<f32>(0.0);
    var lo9 = vec4<f32>(0.0);
    var hi9 = vec4<f32>(0.0);
    var lo10 = vec4<f32>(0.0);
    var hi10 = vec4<f32>(0.0);
    var lo11 = vec4<f32>(0.0);
    var hi11 = vec4<f32>(0.0);
    var lo12 = vec4<f32>(0.0);
    var hi12 = vec4<f32>(0.0);
    var lo13 = vec4<f32>(0.0);
    var hi13 = vec4<f32>(0.0);
    var lo14 = vec4<f32>(0.0);
    var hi14 = vec4<f32>(0.0);
    var lo15 = vec4<f32>(0.0);
    var hi15 = vec4<f32>(0.0);
    let ln = p.n - 1u;
    let bc0 = (z * p.b_bs + min(col0 + 0u, ln) * p.b_cs) / 4u;
    let bc1 = (z * p.b_bs + min(col0 + 1u, ln) * p.b_cs) / 4u;
    let bc2 = (z * p.b_bs + min(col0 + 2u, ln) * p.b_cs) / 4u;
    let bc3 = (z * p.b_bs + min(col0 + 3u, ln) * p.b_cs) / 4u;
    let bc4 = (z * p.b_bs + min(col0 + 4u, ln) * p.b_cs) / 4u;
    let bc5 = (z * p.b_bs + min(col0 + 5u, ln) * p.b_cs) / 4u;
    let bc6 = (z * p.b_bs + min(col0 + 6u, ln) * p.b_cs) / 4u;
    let bc7 = (z * p.b_bs + min(col0 + 7u, ln) * p.b_cs) / 4u;
    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {
        let b0 = b[bc0 + k4];
        let b1 = b[bc1 + k4];
        let b2 = b[bc2 + k4];
        let b3 = b[bc3 + k4];
        let b4 = b[bc4 + k4];
        let b5 = b[bc5 + k4];
        let b6 = b[bc6 + k4];
        let b7 = b[bc7 + k4];
        let a0 = a[ar0 + k4];
        lo0 = lo0 + vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
        hi0 = hi0 + vec4<f32>(dot(a0, b4), dot(a0, b5), dot(a0, b6), dot(a0, b7));
        let a1 = a[ar1 + k4];
        lo1 = lo1 + vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
        hi1 = hi1 + vec4<f32>(dot(a1, b4), dot(a1, b5), dot(a1, b6), dot(a1, b7));
        let a2 = a[ar2 + k4];
        lo2 = lo2 + vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
        hi2 = hi2 + vec4<f32>(dot(a2, b4), dot(a2, b5), dot(a2, b6), dot(a2, b7));
        let a3 = a[ar3 + k4];
        lo3 = lo3 + vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
        hi3 = hi3 + vec4<f32>(dot(a3, b4), dot(a3, b5), dot(a3, b6), dot(a3, b7));
        let a4 = a[ar4 + k4];
        lo4 = lo4 + vec4<f32>(dot(a4, b0), dot(a4, b1), dot(a4, b2), dot(a4, b3));
        hi4 = hi4 + vec4<f32>(dot(a4, b4), dot(a4, b5), dot(a4, b6), dot(a4, b7));
        let a5 = a[ar5 + k4];
        lo5 = lo5 + vec4<f32>(dot(a5, b0), dot(a5, b1), dot(a5, b2), dot(a5, b3));
        hi5 = hi5 + vec4<f32>(dot(a5, b4), dot(a5, b5), dot(a5, b6), dot(a5, b7));
        let a6 = a[ar6 + k4];
        lo6 = lo6 + vec4<f32>(dot(a6, b0), dot(a6, b1), dot(a6, b2), dot(a6, b3));
        hi6 = hi6 + vec4<f32>(dot(a6, b4), dot(a6, b5), dot(a6, b6), dot(a6, b7));
        let a7 = a[ar7 + k4];
        lo7 = lo7 + vec4<f32>(dot(a7, b0), dot(a7, b1), dot(a7, b2), dot(a7, b3));
        hi7 = hi7 + vec4<f32>(dot(a7, b4), dot(a7, b5), dot(a7, b6), dot(a7, b7));
        let a8 = a[ar8 + k4];
        lo8 = lo8 + vec4<f32>(dot(a8, b0), dot(a8, b1), dot(a8, b2), dot(a8, b3));
        hi8 = hi8 + vec4<f32>(dot(a8, b4), dot(a8, b5), dot(a8, b6), dot(a8, b7));
        let a9 = a[ar9 + k4];
        lo9 = lo9 + vec4<f32>(dot(a9, b0), dot(a9, b1), dot(a9, b2), dot(a9, b3));
        hi9 = hi9 + vec4<f32>(dot(a9, b4), dot(a9, b5), dot(a9, b6), dot(a9, b7));
        let a10 = a[ar10 + k4];
        lo10 = lo10 + vec4<f32>(dot(a10, b0), dot(a10, b1), dot(a10, b2), dot(a10, b3));
        hi10 = hi10 + vec4<f32>(dot(a10, b4), dot(a10, b5), dot(a10, b6), dot(a10, b7));
        let a11 = a[ar11 + k4];
        lo11 = lo11 + vec4<f32>(dot(a11, b0), dot(a11, b1), dot(a11, b2), dot(a11, b3));
        hi11 = hi11 + vec4<f32>(dot(a11, b4), dot(a11, b5), dot(a11, b6), dot(a11, b7));
        let a12 = a[ar12 + k4];
        lo12 = lo12 + vec4<f32>(dot(a12, b0), dot(a12, b1), dot(a12, b2), dot(a12, b3));
        hi12 = hi12 + vec4<f32>(dot(a12, b4), dot(a12, b5), dot(a12, b6), dot(a12, b7));
        let a13 = a[ar13 + k4];
        lo13 = lo13 + vec4<f32>(dot(a13, b0), dot(a13, b1), dot(a13, b2), dot(a13, b3));
        hi13 = hi13 + vec4<f32>(dot(a13, b4), dot(a13, b5), dot(a13, b6), dot(a13, b7));
        let a14 = a[ar14 + k4];
        lo14 = lo14 + vec4<f32>(dot(a14, b0), dot(a14, b1), dot(a14, b2), dot(a14, b3));
        hi14 = hi14 + vec4<f32>(dot(a14, b4), dot(a14, b5), dot(a14, b6), dot(a14, b7));
        let a15 = a[ar15 + k4];
        lo15 = lo15 + vec4<f32>(dot(a15, b0), dot(a15, b1), dot(a15, b2), dot(a15, b3));
        hi15 = hi15 + vec4<f32>(dot(a15, b4), dot(a15, b5), dot(a15, b6), dot(a15, b7));
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
    store_row(c_base, row0 + 8u, col0, lo8);
    store_row(c_base, row0 + 8u, col0 + 4u, hi8);
    store_row(c_base, row0 + 9u, col0, lo9);
    store_row(c_base, row0 + 9u, col0 + 4u, hi9);
    store_row(c_base, row0 + 10u, col0, lo10);
    store_row(c_base, row0 + 10u, col0 + 4u, hi10);
    store_row(c_base, row0 + 11u, col0, lo11);
    store_row(c_base, row0 + 11u, col0 + 4u, hi11);
    store_row(c_base, row0 + 12u, col0, lo12);
    store_row(c_base, row0 + 12u, col0 + 4u, hi12);
    store_row(c_base, row0 + 13u, col0, lo13);
    store_row(c_base, row0 + 13u, col0 + 4u, hi13);
    store_row(c_base, row0 + 14u, col0, lo14);
    store_row(c_base, row0 + 14u, col0 + 4u, hi14);
    store_row(c_base, row0 + 15u, col0, lo15);
    store_row(c_base, row0 + 15u, col0 + 4u, hi15);
}
