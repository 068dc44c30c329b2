// Pool family: 2-D max pooling in one pass per output (the window's maximum and the flat index in
// x of its first occurrence, scanning the window row by row as PyTorch does), and its backward
// as a gather: each x element sums the gradients of the windows whose arg-max it is (no atomics).
// x is [B, C, H, W]; outputs [B, C, OH, OW]; window (ky, kx) of output (oy, ox) reads x at
// (oy * sh + ky * dh - ph, ox * sw + kx * dw - pw); padding never wins. Params and `out_pos`
// come from window.wgsl.

// Forward: x (binding 0) -> values (2), indices (3). Backward: g (0), indices (1) -> dx (2).
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> idx_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(256)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let ox = i % p.ow;
    var t = i / p.ow;
    let oy = t % p.oh;
    let plane = t / p.oh; // b * C + c
    let base = plane * p.h * p.w;
    var best = bitcast<f32>(0xff800000u); // -inf
    var at = base;
    var found = false;
    for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
        let iy = i32(oy * p.sh + ky * p.dh) - i32(p.ph);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
            let ix = i32(ox * p.sw + kx * p.dw) - i32(p.pw);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let e = base + u32(iy) * p.w + u32(ix);
            let v = src[e];
            // The first maximum wins; a NaN wins and stays (it propagates, as in PyTorch).
            // NaN tested on the bits: the compiler may assume v != v is false.
            if (!found || v > best || (is_nan(v) && !is_nan(best))) {
                best = v;
                at = e;
            }
            found = true;
        }
    }
    dst[i] = best;
    idx_out[i] = at;
}

@compute @workgroup_size(256)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let x = i % p.w;
    var t = i / p.w;
    let y = t % p.h;
    let plane = t / p.h;
    let obase = plane * p.oh * p.ow;
    // Only the windows that cover (y, x) (dilation is 1): outputs lo..=hi along each axis, a
    // single one when the windows do not overlap.
    let ty = y + p.ph;
    let tx = x + p.pw;
    let y_lo = select(0u, (ty - p.kh) / p.sh + 1u, ty >= p.kh);
    let x_lo = select(0u, (tx - p.kw) / p.sw + 1u, tx >= p.kw);
    let y_hi = min(ty / p.sh, p.oh - 1u);
    let x_hi = min(tx / p.sw, p.ow - 1u);
    var acc = 0.0;
    for (var oy = y_lo; oy <= y_hi; oy = oy + 1u) {
        for (var ox = x_lo; ox <= x_hi; ox = ox + 1u) {
            let o = obase + oy * p.ow + ox;
            if (idx_in[o] == i) {
                acc = acc + src[o];
            }
        }
    }
    dst[i] = acc;
}
