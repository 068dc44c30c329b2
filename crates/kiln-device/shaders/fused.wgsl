// Fused elementwise kernel: the template from which fuse.rs generates one kernel per chain of
// unary, scalar and binary ops over the same elements, preceded by the ops.wgsl functions it
// calls. The generator replaces the two marker lines: BINDINGS with one read_write storage array per distinct buffer
// (T is f32, or vec4<f32> when the chain runs four elements per invocation) followed by the
// uniform `p` at the next binding; BODY with the loads, one `let` per op, and the stores of the
// results that are still referenced. No buffer is both read and written by one chain.
// Operand i of the chain is read at element e (e = i * 4 for vec4) through its index map:
// the whole array (x[i]), a row vector broadcast down the rows (x[i % cols]), a column vector
// broadcast along the rows (x[i / cols]), a per-channel vector over [N, C, L]
// (x[(i / cols) % dims]) or one scalar (x[0]). cols[k] holds input k's column count or run
// length (divided by 4 in the vec4 form), dims[k] its channel count; alpha[k] the scalar of op k.

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    cols: array<vec4<u32>, 4>,
    dims: array<vec4<u32>, 4>,
    alpha: array<vec4<f32>, 7>,
}

//@BINDINGS

@compute @workgroup_size(256)
fn fused(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) {
        return;
    }
//@BODY
}
