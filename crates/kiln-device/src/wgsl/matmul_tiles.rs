//! The vec4 tiled matmul kernels real GPUs run, generated from a [`TileKernel`] description.
//!
//! The same product as `matmul.wgsl` for operands laid out so that four consecutive floats can
//! be read as one vec4 (a quarter of the loads). Workgroups of 8 x 8 invocations, each computing
//! `rows` rows x 8 columns of C in named accumulators (two vec4s per row). Rows and columns past
//! the edge are clamped on load and masked on store; strides are in floats.

use std::fmt::Write;

use super::matmul::PARAMS_FIELDS;

/// How a tiled kernel reads its operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileForm {
    /// A [M, K] with K contiguous (K % 4 == 0), B [K, N] with N contiguous (N % 4 == 0).
    Nn,
    /// A [M, K] with K contiguous, B read transposed from [N, K] (K contiguous): dot products.
    Nt,
    /// A read transposed from [K, M] (M contiguous), B [K, N]: each K step an outer product of
    /// 8 values of A and 8 of B from four vec4 loads (the weight gradient). 8 rows only.
    Tn,
}

/// A tiled kernel: its form and the rows of C per invocation (8 or 16; `Tn` 8). An invocation's
/// rows share each gathered vec4 of B, so 16 rows do twice the FMAs per load of B (for M >= 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileKernel {
    /// How the operands are read.
    pub form: TileForm,
    /// Rows of C per invocation.
    pub rows: usize,
}

impl TileKernel {
    /// Shorthand for a description.
    pub const fn new(form: TileForm, rows: usize) -> TileKernel {
        TileKernel { form, rows }
    }

    /// The entry point's name, e.g. `tile_nn_r16`.
    pub fn name(&self) -> String {
        let form = match self.form {
            TileForm::Nn => "nn",
            TileForm::Nt => "nt",
            TileForm::Tn => "tn",
        };
        format!("tile_{form}_r{}", self.rows)
    }

    /// Rows and columns of C per workgroup (8 x 8 invocations of `rows` x 8).
    pub fn block(&self) -> (usize, usize) {
        (8 * self.rows, 64)
    }

    /// Whether the description makes a kernel: 8 or 16 rows (`Tn`: 8).
    pub fn valid(&self) -> bool {
        match self.form {
            TileForm::Tn => self.rows == 8,
            _ => self.rows == 8 || self.rows == 16,
        }
    }

    /// The kernel's WGSL module: one entry point, named [`TileKernel::name`].
    pub fn source(&self) -> String {
        let mut o = format!("struct Params {{\n{PARAMS_FIELDS}}}\n\n");
        o.push_str(
            "@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;\n\
             @group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;\n\
             @group(0) @binding(2) var<storage, read_write> c: array<f32>;\n\
             @group(0) @binding(3) var<uniform> p: Params;\n\n\
             fn store_row(c_base: u32, row: u32, col0: u32, v: vec4<f32>) {\n    \
             if (row >= p.m || col0 >= p.n) {\n        return;\n    }\n    \
             let o = c_base + row * p.n + col0;\n    c[o] = v.x;\n    \
             if (col0 + 1u < p.n) { c[o + 1u] = v.y; }\n    \
             if (col0 + 2u < p.n) { c[o + 2u] = v.z; }\n    \
             if (col0 + 3u < p.n) { c[o + 3u] = v.w; }\n}\n\n",
        );
        let r_n = self.rows;
        writeln!(
            o,
            "@compute @workgroup_size(8, 8)\nfn {}(@builtin(global_invocation_id) gid: vec3<u32>) {{\n    \
             let row0 = gid.y * {r_n}u;\n    let col0 = gid.x * 8u;\n    \
             if (row0 >= p.m || col0 >= p.n) {{\n        return;\n    }}\n    let z = gid.z;",
            self.name()
        )
        .unwrap();
        if self.form != TileForm::Tn {
            o.push_str("    let lm = p.m - 1u;\n");
            for r in 0..r_n {
                writeln!(o, "    let ar{r} = (z * p.a_bs + min(row0 + {r}u, lm) * p.a_rs) / 4u;").unwrap();
            }
        }
        for r in 0..r_n {
            writeln!(o, "    var lo{r} = vec4<f32>(0.0);\n    var hi{r} = vec4<f32>(0.0);").unwrap();
        }
        match self.form {
            TileForm::Nn => nn(&mut o, r_n),
            TileForm::Nt => nt(&mut o, r_n),
            TileForm::Tn => tn(&mut o),
        }
        o.push_str("    let c_base = z * p.c_bs;\n");
        for r in 0..r_n {
            writeln!(
                o,
                "    store_row(c_base, row0 + {r}u, col0, lo{r});\n    store_row(c_base, row0 + {r}u, col0 + 4u, hi{r});"
            )
            .unwrap();
        }
        o.push_str("}\n");
        o
    }
}

/// `acc = a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3 + acc`, as nested `fma`s.
fn fma4(acc: &str, a: &str, b: &str) -> String {
    format!(
        "{acc} = fma(vec4<f32>({a}.x), {b}0, fma(vec4<f32>({a}.y), {b}1, fma(vec4<f32>({a}.z), {b}2, \
         fma(vec4<f32>({a}.w), {b}3, {acc}))));"
    )
}

fn nn(o: &mut String, r_n: usize) {
    // B's rows in vec4 units; the high half is clamped so that it stays in bounds when N % 8 == 4.
    o.push_str(
        "    let b_base = z * p.b_bs / 4u;\n    let n4 = p.n / 4u;\n    let rs4 = p.b_rs / 4u;\n    \
         let cl = col0 / 4u;\n    let ch = min(col0 / 4u + 1u, n4 - 1u);\n    \
         for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {\n        let r0 = b_base + (k4 * 4u) * rs4;\n",
    );
    for q in 0..4 {
        writeln!(o, "        let bl{q} = b[r0 + {q}u * rs4 + cl];\n        let bh{q} = b[r0 + {q}u * rs4 + ch];")
            .unwrap();
    }
    for r in 0..r_n {
        writeln!(o, "        let a{r} = a[ar{r} + k4];").unwrap();
        let a = format!("a{r}");
        writeln!(o, "        {}\n        {}", fma4(&format!("lo{r}"), &a, "bl"), fma4(&format!("hi{r}"), &a, "bh"))
            .unwrap();
    }
    o.push_str("    }\n");
}

fn nt(o: &mut String, r_n: usize) {
    // Columns of op(B) are rows of the stored [N, K] buffer, in vec4 units.
    o.push_str("    let ln = p.n - 1u;\n");
    for j in 0..8 {
        writeln!(o, "    let bc{j} = (z * p.b_bs + min(col0 + {j}u, ln) * p.b_cs) / 4u;").unwrap();
    }
    o.push_str("    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {\n");
    for j in 0..8 {
        writeln!(o, "        let b{j} = b[bc{j} + k4];").unwrap();
    }
    for r in 0..r_n {
        writeln!(
            o,
            "        let a{r} = a[ar{r} + k4];\n        \
             lo{r} = lo{r} + vec4<f32>(dot(a{r}, b0), dot(a{r}, b1), dot(a{r}, b2), dot(a{r}, b3));\n        \
             hi{r} = hi{r} + vec4<f32>(dot(a{r}, b4), dot(a{r}, b5), dot(a{r}, b6), dot(a{r}, b7));"
        )
        .unwrap();
    }
    o.push_str("    }\n");
}

fn tn(o: &mut String) {
    // Column blocks clamped so that both halves stay in bounds when M or N % 8 == 4.
    o.push_str(
        "    let m4 = p.m / 4u;\n    let n4 = p.n / 4u;\n    let a_base = z * p.a_bs / 4u;\n    \
         let b_base = z * p.b_bs / 4u;\n    let ars4 = p.a_cs / 4u;\n    let brs4 = p.b_rs / 4u;\n    \
         let al = row0 / 4u;\n    let ah = min(row0 / 4u + 1u, m4 - 1u);\n    let bl = col0 / 4u;\n    \
         let bh = min(col0 / 4u + 1u, n4 - 1u);\n    for (var k = 0u; k < p.k; k = k + 1u) {\n        \
         let a0 = a[a_base + k * ars4 + al];\n        let a1 = a[a_base + k * ars4 + ah];\n        \
         let b0 = b[b_base + k * brs4 + bl];\n        let b1 = b[b_base + k * brs4 + bh];\n",
    );
    for r in 0..8 {
        let c = ["x", "y", "z", "w"][r % 4];
        let a = r / 4;
        writeln!(
            o,
            "        lo{r} = fma(vec4<f32>(a{a}.{c}), b0, lo{r});\n        hi{r} = fma(vec4<f32>(a{a}.{c}), b1, hi{r});"
        )
        .unwrap();
    }
    o.push_str("    }\n");
}
