// Sliding-window geometry shared by the im2col and pool families (prepended to both, as ops.wgsl
// is to the elementwise families; mirrored by `Im2colParams` in kernels/im2col.rs): x is
// [b, c, h, w]; window tap (ky, kx) of output (oy, ox) reads x at
// (oy * sh + ky * dh - ph, ox * sw + kx * dw - pw); n is the launch's invocation count, pad the
// value read outside x.

struct Params {
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

// The output coordinate whose window tap `k` reads input coordinate `v` along one axis (input
// size implied by the caller; `size` outputs, padding `pad`, dilation `dil`, stride `stride`), or
// -1 when no output does: the backward passes gather over these instead of scattering.
fn out_pos(v: u32, k: u32, pad: u32, dil: u32, stride: u32, size: u32) -> i32 {
    let t = i32(v + pad) - i32(k * dil);
    if (t < 0 || u32(t) % stride != 0u || u32(t) / stride >= size) {
        return -1;
    }
    return i32(u32(t) / stride);
}
