// Im2col family: the patches of a convolution or pooling window as the columns of a matrix, and
// the way back. x is [B, C, H, W] (contiguous); the columns are laid out [C, KH, KW, B, OH, OW],
// i.e. for C = G * Cg, a batch of G matrices [Cg * KH * KW, B * OH * OW], so that a grouped
// convolution is one batched matmul W [G, O/G, Cg*KH*KW] @ cols. Window (ky, kx) of output
// (oy, ox) reads x at (oy * sh + ky * dh - ph, ox * sw + kx * dw - pw), or `pad` outside x.
// col2im is im2col's adjoint: each x element sums the columns that read it (a gather over the
// window positions, so no atomics). Large launches use a 2-D grid. Params and `out_pos` come
// from window.wgsl.

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// Four consecutive outputs of one column row per invocation (p.n = rows * ceil(OW / 4)): the
// index arithmetic, six divisions, is done once for the four.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let quads = (p.ow + 3u) / 4u;
    let ox0 = (i % quads) * 4u;
    var t = i / quads;
    let row = t; // (c, ky, kx, b, oy)
    let oy = t % p.oh;
    t = t / p.oh;
    let b = t % p.b;
    t = t / p.b;
    let kx = t % p.kw;
    t = t / p.kw;
    let ky = t % p.kh;
    let c = t / p.kh;
    let iy = i32(oy * p.sh + ky * p.dh) - i32(p.ph);
    let inside_y = iy >= 0 && iy < i32(p.h);
    let src_row = ((b * p.c + c) * p.h + u32(max(iy, 0))) * p.w;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let ox = ox0 + j;
        if (ox >= p.ow) {
            break;
        }
        let ix = i32(ox * p.sw + kx * p.dw) - i32(p.pw);
        var v = p.pad;
        if (inside_y && ix >= 0 && ix < i32(p.w)) {
            v = src[src_row + u32(ix)];
        }
        dst[row * p.ow + ox] = v;
    }
}

@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let x = i % p.w;
    var t = i / p.w;
    let y = t % p.h;
    t = t / p.h;
    let c = t % p.c;
    let b = t / p.c;
    let l = p.oh * p.ow;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky = ky + 1u) {
        let oy = out_pos(y, ky, p.ph, p.dh, p.sh, p.oh);
        if (oy < 0) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx = kx + 1u) {
            let ox = out_pos(x, kx, p.pw, p.dw, p.sw, p.ow);
            if (ox < 0) {
                continue;
            }
            acc = acc + src[((c * p.kh + ky) * p.kw + kx) * p.b * l + b * l + u32(oy) * p.ow + u32(ox)];
        }
    }
    dst[i] = acc;
}
