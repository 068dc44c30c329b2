// Index family: turns integer indices into a dense 0/1 mask. For a tensor viewed as
// [outer, dim, inner] and indices idx[outer * inner] (each in 0..dim), writes
// out[o, d, i] = 1.0 if idx[o * inner + i] == d, else 0.0. This is one_hot (inner = 1) and the
// scatter pattern of max/argmax backward.

struct Params {
    n: u32,
    dim: u32,
    inner: u32,
    pad0: u32,
}

@group(0) @binding(0) var<storage, read> idx: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn index_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    let inner_i = i % p.inner;
    let rest = i / p.inner;
    let d = rest % p.dim;
    let o = rest / p.dim;
    out[i] = select(0.0, 1.0, idx[o * p.inner + inner_i] == d);
}
