// Copy family: gathers a strided view into a contiguous array (transpose, permute, narrow,
// broadcast_to with stride 0 on the expanded dims), and the way back, `place`: a contiguous array
// written into a strided view of a larger one (each input of a cat, a gradient into its slice).
// It moves 32-bit words, so it serves f32 and u32 tensors alike.

struct Params {
    n: u32,
    rank: u32,
    offset: u32,
    pad0: u32,
    shape: array<vec4<u32>, 2>,
    strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
    if (p.rank == 1u) {
        dst[i] = src[p.offset + i * p.strides[0][0]];
        return;
    }
    var rem = i;
    var is = p.offset;
    for (var d = i32(p.rank) - 1; d >= 0; d = d - 1) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let s = p.shape[q][r];
        is = is + (rem % s) * p.strides[q][r];
        rem = rem / s;
    }
    dst[i] = src[is];
}

// The element of the strided view [outer, mid, cols] at (row, col), row = (o, m), for gather3d
// and place3d.
fn strided3(row: u32, col: u32) -> u32 {
    let mid = p.shape[0][1];
    let o = row / mid;
    let m = row - o * mid;
    return p.offset + o * p.strides[0][0] + m * p.strides[0][1] + col * p.strides[0][2];
}

// Two or three merged dims (a transpose of a matrix or of a batch's first two dims, a row/column
// broadcast), given as three [outer, mid, cols]: x over the columns, the workgroup's y (and z)
// over the rows (outer, mid), so the one division per invocation is of workgroup-uniform values.
@compute @workgroup_size(256)
fn gather3d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let cols = p.shape[0][2];
    let col = gid.x;
    let row = wid.y + wid.z * nwg.y;
    if (col >= cols || row >= p.shape[0][0] * p.shape[0][1]) {
        return;
    }
    dst[row * cols + col] = src[strided3(row, col)];
}

// The inverse of gather3d: src contiguous [outer, mid, cols] written to
// dst[offset + o * s0 + m * s1 + col * s2]; the rest of dst is left as it is.
@compute @workgroup_size(256)
fn place3d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let cols = p.shape[0][2];
    let col = gid.x;
    let row = wid.y + wid.z * nwg.y;
    if (col >= cols || row >= p.shape[0][0] * p.shape[0][1]) {
        return;
    }
    dst[strided3(row, col)] = src[row * cols + col];
}
