//! The software adapter's subgroup matmul kernels, generated from a [`RowKernel`] description.
//!
//! On llvmpipe a workgroup of 8 invocations is one SIMD vector, and every storage load whose
//! address differs between lanes is a loop over the lanes with a bounds check per element
//! (about 27 FMAs' worth), so these kernels load as few elements per lane as they can: each
//! lane owns rows of C and loads A for them only, the 8 lanes load B cooperatively (one vec4 of
//! a different column group each) and `subgroupBroadcast` hands every lane every column. The
//! accumulators are named variables, hundreds of them: llvmpipe moves a private array to scratch
//! memory, which costs more than the kernel saves, so the text is generated rather than written.
//! Rows and columns past the edge are clamped on load and masked on store; strides are in floats.
//! Needs subgroups of at least 8 lanes and is chosen only on such adapters.

use std::fmt::Write;

use super::matmul::PARAMS_FIELDS;

/// Lanes per subgroup the kernels are written for (llvmpipe's 256-bit vectors: 8 f32 lanes).
pub const LANES: usize = 8;

/// How a subgroup kernel reads its operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowForm {
    /// A [M, K] with K contiguous, B [K, N] with N contiguous (N % 4 == 0): lanes own rows, B's
    /// vec4 column groups are shared.
    Nn,
    /// A [M, K] with K contiguous, B read transposed from [N, K] (K contiguous): each lane loads
    /// a vec4 along K of one column, so N may be anything; C is stored one value at a time.
    Nt,
    /// A read transposed from [K, M] (M contiguous, M % 4 == 0), B [K, N] with N contiguous: the
    /// weight gradient; any K. Lanes own groups of four consecutive rows.
    Tn,
    /// `Nn` for an A that cannot be read by vec4 (a K such as 10, or any strides): one value of
    /// K at a time, A by scalar loads.
    Nn1,
    /// Products with few rows (M <= `rows`): lanes own column groups and compute every row; A is
    /// loaded by scalar loads, a row per lane, and handed round with `subgroupBroadcast`.
    Cols,
}

/// A subgroup matmul kernel: its form, the rows of C per lane (`Cols`: the rows in all) and the
/// tiles of 8 column groups per subgroup. Everything else (block of C, entry point, source)
/// follows from these three numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowKernel {
    /// How the operands are read.
    pub form: RowForm,
    /// Rows per lane (a multiple of 4 for `Tn`; `Cols`: rows of C in all, a multiple of 8).
    pub rows: usize,
    /// Tiles of 8 columns (`Nt`) or 8 vec4 column groups (the others) per subgroup.
    pub tiles: usize,
}

/// Elementwise ops that run at the end of a subgroup kernel, on the block of C it has just
/// stored (see `fuse/`): a loop in which the lanes walk the block, compute `body` for element (or
/// vec4) `i` of C, whose product is `v`, and store its results.
pub(crate) struct Epilogue<'a> {
    /// The WGSL functions `body` calls.
    pub(crate) prelude: &'a str,
    /// Storage bindings in all: A, B and C at 0-2, the chain's own arrays `s3`.. after them.
    pub(crate) slots: usize,
    /// Four elements per step (N % 4 == 0; the chain's arrays are vec4 arrays).
    pub(crate) four: bool,
    /// The chain's loads, ops and stores, one statement per line.
    pub(crate) body: &'a [String],
}

impl RowKernel {
    /// Shorthand for a description.
    pub const fn new(form: RowForm, rows: usize, tiles: usize) -> RowKernel {
        RowKernel { form, rows, tiles }
    }

    /// The entry point's name, e.g. `nn_r4t2` (`cols_m16t2` for `Cols`).
    pub fn name(&self) -> String {
        let (form, r) = match self.form {
            RowForm::Nn => ("nn", 'r'),
            RowForm::Nt => ("nt", 'r'),
            RowForm::Tn => ("tn", 'r'),
            RowForm::Nn1 => ("nn1", 'r'),
            RowForm::Cols => ("cols", 'm'),
        };
        format!("{form}_{r}{}t{}", self.rows, self.tiles)
    }

    /// Rows and columns of C each workgroup (one subgroup) computes.
    pub fn block(&self) -> (usize, usize) {
        let s = LANES;
        match self.form {
            RowForm::Nn | RowForm::Nn1 | RowForm::Tn => (s * self.rows, s * self.tiles * 4),
            RowForm::Nt => (s * self.rows, s * self.tiles),
            RowForm::Cols => (self.rows, s * self.tiles * 4),
        }
    }

    /// Whether C is stored by vec4 (every form but `Nt`, which needs no N % 4 == 0).
    pub fn stores_vec4(&self) -> bool {
        self.form != RowForm::Nt
    }

    /// Whether the description makes a kernel: 1-8 tiles; 1-16 rows per lane (`Tn`: a multiple
    /// of 4); `Cols`: 8, 16, 24 or 32 rows.
    pub fn valid(&self) -> bool {
        let rows = match self.form {
            RowForm::Tn => self.rows % 4 == 0 && (4..=16).contains(&self.rows),
            RowForm::Cols => self.rows % LANES == 0 && (LANES..=4 * LANES).contains(&self.rows),
            _ => (1..=16).contains(&self.rows),
        };
        rows && (1..=8).contains(&self.tiles)
    }

    /// The kernel's WGSL module: one entry point, named [`RowKernel::name`].
    pub fn source(&self) -> String {
        self.source_with(None)
    }

    /// The module, with `epi` appended to the kernel when given.
    pub(crate) fn source_with(&self, epi: Option<&Epilogue>) -> String {
        let mut o = format!("// Generated by kiln-device (src/wgsl/matmul_rows.rs) from {self:?}.\n");
        let vec4 = self.stores_vec4();
        let scalar_a = matches!(self.form, RowForm::Nn1 | RowForm::Cols);
        if let Some(e) = epi {
            o.push_str(e.prelude);
        }
        o.push_str("struct Params {\n");
        o.push_str(PARAMS_FIELDS);
        if epi.is_some() {
            // The chain's column counts and scalars follow the matmul's (as `FusedParams`).
            o.push_str(
                "    cols: array<vec4<u32>, 4>,\n    dims: array<vec4<u32>, 4>,\n    alpha: array<vec4<f32>, 7>,\n",
            );
        }
        o.push_str("}\n\n");
        // An epilogue binds everything read-write: a chain may read A or B again.
        let ro = if epi.is_some() { "read_write" } else { "read" };
        if scalar_a {
            writeln!(o, "@group(0) @binding(0) var<storage, {ro}> a_s: array<f32>;").unwrap();
        } else {
            writeln!(o, "@group(0) @binding(0) var<storage, {ro}> a: array<vec4<f32>>;").unwrap();
        }
        writeln!(o, "@group(0) @binding(1) var<storage, {ro}> b: array<vec4<f32>>;").unwrap();
        if vec4 {
            o.push_str("@group(0) @binding(2) var<storage, read_write> c4: array<vec4<f32>>;\n");
        } else {
            o.push_str("@group(0) @binding(2) var<storage, read_write> c: array<f32>;\n");
        }
        let slots = epi.map_or(3, |e| e.slots);
        if let Some(e) = epi {
            let ty = if e.four { "vec4<f32>" } else { "f32" };
            for s in 3..e.slots {
                writeln!(o, "@group(0) @binding({s}) var<storage, read_write> s{s}: array<{ty}>;").unwrap();
            }
        }
        writeln!(o, "@group(0) @binding({slots}) var<uniform> p: Params;\n").unwrap();
        if vec4 {
            // Four columns from col0 (a multiple of 4) in one store: these kernels need N % 4 == 0
            // (they read B by vec4 rows), so a row never ends inside the vec4.
            o.push_str(
                "fn store4(c_base: u32, row: u32, col0: u32, v: vec4<f32>) {\n    \
                 if (row < p.m && col0 < p.n) {\n        c4[(c_base + row * p.n + col0) / 4u] = v;\n    }\n}\n",
            );
        } else {
            o.push_str(
                "fn store1(c_base: u32, row: u32, col: u32, v: f32) {\n    \
                 if (row < p.m && col < p.n) {\n        c[c_base + row * p.n + col] = v;\n    }\n}\n",
            );
        }
        writeln!(
            o,
            "\n@compute @workgroup_size({LANES})\nfn {}(@builtin(workgroup_id) wg: vec3<u32>, \
             @builtin(subgroup_invocation_id) lane: u32) {{",
            self.name()
        )
        .unwrap();
        o.push_str("    let z = wg.z;\n");
        let (r, t) = (self.rows, self.tiles);
        match self.form {
            RowForm::Nn => nn(&mut o, r, t),
            RowForm::Nt => nt(&mut o, r, t),
            RowForm::Tn => tn(&mut o, r / 4, t),
            RowForm::Nn1 => nn1(&mut o, r, t),
            RowForm::Cols => cols(&mut o, r, t),
        }
        if let Some(e) = epi {
            self.epilogue(&mut o, e);
        }
        o.push_str("}\n");
        o
    }

    /// The loop of an epilogue: lane `lane` takes elements (or vec4s) lane, lane + 8, ... of the
    /// workgroup's block of C, reads the product back (from cache) and runs the chain on it.
    /// A loop rather than the chain inside each store: inlined at each of the 64-512 stores per
    /// lane, a chain made one kernel take seconds to compile.
    fn epilogue(&self, o: &mut String, e: &Epilogue) {
        let (rows, cols) = self.block();
        let w = if e.four { cols / 4 } else { cols };
        let scale = if e.four { " * 4u" } else { "" };
        let c = match (e.four, self.stores_vec4()) {
            (true, true) => "c4[i]",
            (true, false) => "vec4<f32>(c[i * 4u], c[i * 4u + 1u], c[i * 4u + 2u], c[i * 4u + 3u])",
            (false, true) => "c4[i / 4u][i % 4u]",
            (false, false) => "c[i]",
        };
        writeln!(
            o,
            "    storageBarrier();\n    for (var e = lane; e < {}u; e = e + {LANES}u) {{\n        \
             let row = wg.y * {rows}u + e / {w}u;\n        let col = wg.x * {cols}u + (e % {w}u){scale};\n        \
             if (row < p.m && col < p.n) {{\n            let i = (wg.z * p.c_bs + row * p.n + col){};\n            \
             let v = {c};",
            rows * w,
            if e.four { " / 4u" } else { "" },
        )
        .unwrap();
        for line in e.body {
            writeln!(o, "            {line}").unwrap();
        }
        o.push_str("        }\n    }\n");
    }
}

const S: usize = LANES;

/// Each lane's vec4 column group of B for every tile, and the R x T x 8 vec4 accumulators (the
/// forms whose lanes own rows and read B by vec4 rows: `Nn`, `Nn1`).
fn columns_and_accumulators(o: &mut String, r_n: usize, t_n: usize) {
    for t in 0..t_n {
        writeln!(
            o,
            "    let bc{t} = (p.b_off + z * p.b_bs) / 4u + min(wg.x * {}u + {}u + lane, n4 - 1u);",
            S * t_n,
            S * t
        )
        .unwrap();
    }
    for r in 0..r_n {
        for t in 0..t_n {
            for j in 0..S {
                writeln!(o, "    var c{r}_{t}_{j} = vec4<f32>(0.0);").unwrap();
            }
        }
    }
}

/// The end of the K loop, and every accumulator `c{r}_{t}_{j}` stored, by vec4 (column group
/// 8t + j) or one value (`Nt`: column 8t + j).
fn store_rows(o: &mut String, r_n: usize, t_n: usize, four: bool) {
    o.push_str("    }\n    let c_base = z * p.c_bs;\n");
    for r in 0..r_n {
        for t in 0..t_n {
            for j in 0..S {
                let row = format!("wg.y * {}u + {}u + lane", S * r_n, S * r);
                let col = format!("wg.x * {}u + {}u", S * t_n, S * t + j);
                if four {
                    writeln!(o, "    store4(c_base, {row}, ({col}) * 4u, c{r}_{t}_{j});").unwrap();
                } else {
                    writeln!(o, "    store1(c_base, {row}, {col}, c{r}_{t}_{j});").unwrap();
                }
            }
        }
    }
}

/// Row offsets of A in vec4 units for the lane's R rows.
fn a_rows(o: &mut String, r_n: usize) {
    for r in 0..r_n {
        writeln!(
            o,
            "    let ar{r} = ((p.a_off + z * p.a_bs) + min(wg.y * {}u + {}u + lane, p.m - 1u) * p.a_rs) / 4u;",
            S * r_n,
            S * r
        )
        .unwrap();
    }
}

/// `fma` of the four components of A's vec4 `a` with four broadcast rows of B into `acc`.
fn fma4(acc: &str, a: &str, b: [String; 4]) -> String {
    format!(
        "{acc} = fma(vec4<f32>({a}.x), {}, fma(vec4<f32>({a}.y), {}, fma(vec4<f32>({a}.z), {}, fma(vec4<f32>({a}.w), {}, {acc}))));",
        b[0], b[1], b[2], b[3]
    )
}

fn nn(o: &mut String, r_n: usize, t_n: usize) {
    o.push_str("    let rs4 = p.b_rs / 4u;\n    let n4 = p.n / 4u;\n");
    a_rows(o, r_n);
    columns_and_accumulators(o, r_n, t_n);
    o.push_str("    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {\n        let kr = k4 * 4u * rs4;\n");
    for t in 0..t_n {
        for q in 0..4 {
            writeln!(o, "        let l{t}_{q} = b[bc{t} + kr + {q}u * rs4];").unwrap();
        }
    }
    for r in 0..r_n {
        writeln!(o, "        let a{r} = a[ar{r} + k4];").unwrap();
    }
    for t in 0..t_n {
        for j in 0..S {
            for q in 0..4 {
                writeln!(o, "        let b{q}_{t}_{j} = subgroupBroadcast(l{t}_{q}, {j}u);").unwrap();
            }
            for r in 0..r_n {
                let b = [0, 1, 2, 3].map(|q| format!("b{q}_{t}_{j}"));
                writeln!(o, "        {}", fma4(&format!("c{r}_{t}_{j}"), &format!("a{r}"), b)).unwrap();
            }
        }
    }
    store_rows(o, r_n, t_n, true);
}

fn nt(o: &mut String, r_n: usize, t_n: usize) {
    a_rows(o, r_n);
    for t in 0..t_n {
        writeln!(
            o,
            "    let bc{t} = ((p.b_off + z * p.b_bs) + min(wg.x * {}u + {}u + lane, p.n - 1u) * p.b_cs) / 4u;",
            S * t_n,
            S * t
        )
        .unwrap();
    }
    for r in 0..r_n {
        for t in 0..t_n {
            for j in 0..S {
                writeln!(o, "    var c{r}_{t}_{j} = 0.0;").unwrap();
            }
        }
    }
    o.push_str("    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {\n");
    for t in 0..t_n {
        writeln!(o, "        let l{t} = b[bc{t} + k4];").unwrap();
    }
    for r in 0..r_n {
        writeln!(o, "        let a{r} = a[ar{r} + k4];").unwrap();
    }
    for t in 0..t_n {
        for j in 0..S {
            writeln!(o, "        let b{t}_{j} = subgroupBroadcast(l{t}, {j}u);").unwrap();
            for r in 0..r_n {
                writeln!(o, "        c{r}_{t}_{j} = c{r}_{t}_{j} + dot(a{r}, b{t}_{j});").unwrap();
            }
        }
    }
    store_rows(o, r_n, t_n, false);
}

fn tn(o: &mut String, g_n: usize, t_n: usize) {
    o.push_str("    let rs4 = p.b_rs / 4u;\n    let n4 = p.n / 4u;\n    let cs4 = p.a_cs / 4u;\n");
    for g in 0..g_n {
        writeln!(
            o,
            "    let ag{g} = (p.a_off + z * p.a_bs) / 4u + min(wg.y * {}u + {}u + lane, p.m / 4u - 1u);",
            S * g_n,
            S * g
        )
        .unwrap();
    }
    for t in 0..t_n {
        writeln!(
            o,
            "    let bc{t} = (p.b_off + z * p.b_bs) / 4u + min(wg.x * {}u + {}u + lane, n4 - 1u);",
            S * t_n,
            S * t
        )
        .unwrap();
    }
    let comps = ["x", "y", "z", "w"];
    for g in 0..g_n {
        for c in comps {
            for t in 0..t_n {
                for j in 0..S {
                    writeln!(o, "    var c{g}{c}_{t}_{j} = vec4<f32>(0.0);").unwrap();
                }
            }
        }
    }
    o.push_str("    for (var k4 = 0u; k4 < p.k / 4u; k4 = k4 + 1u) {\n        let kr = k4 * 4u * rs4;\n");
    o.push_str("        let ka = k4 * 4u * cs4;\n");
    for t in 0..t_n {
        for q in 0..4 {
            writeln!(o, "        let l{t}_{q} = b[bc{t} + kr + {q}u * rs4];").unwrap();
        }
    }
    for g in 0..g_n {
        for q in 0..4 {
            writeln!(o, "        let a{g}_{q} = a[ag{g} + ka + {q}u * cs4];").unwrap();
        }
    }
    for t in 0..t_n {
        for j in 0..S {
            for q in 0..4 {
                writeln!(o, "        let b{q}_{t}_{j} = subgroupBroadcast(l{t}_{q}, {j}u);").unwrap();
            }
            for g in 0..g_n {
                for c in comps {
                    let acc = format!("c{g}{c}_{t}_{j}");
                    writeln!(
                        o,
                        "        {acc} = fma(vec4<f32>(a{g}_0.{c}), b0_{t}_{j}, fma(vec4<f32>(a{g}_1.{c}), b1_{t}_{j}, \
                         fma(vec4<f32>(a{g}_2.{c}), b2_{t}_{j}, fma(vec4<f32>(a{g}_3.{c}), b3_{t}_{j}, {acc}))));"
                    )
                    .unwrap();
                }
            }
        }
    }
    // K need not be a multiple of 4 here (it is A's row stride, not a vec4 dim): the rest one
    // value of K at a time.
    o.push_str("    }\n    for (var kk = p.k / 4u * 4u; kk < p.k; kk = kk + 1u) {\n");
    for t in 0..t_n {
        writeln!(o, "        let l{t} = b[bc{t} + kk * rs4];").unwrap();
    }
    for g in 0..g_n {
        writeln!(o, "        let a{g} = a[ag{g} + kk * cs4];").unwrap();
    }
    for t in 0..t_n {
        for j in 0..S {
            writeln!(o, "        let b{t}_{j} = subgroupBroadcast(l{t}, {j}u);").unwrap();
            for g in 0..g_n {
                for c in comps {
                    let acc = format!("c{g}{c}_{t}_{j}");
                    writeln!(o, "        {acc} = fma(vec4<f32>(a{g}.{c}), b{t}_{j}, {acc});").unwrap();
                }
            }
        }
    }
    o.push_str("    }\n    let c_base = z * p.c_bs;\n");
    for g in 0..g_n {
        for (i, c) in comps.iter().enumerate() {
            for t in 0..t_n {
                for j in 0..S {
                    writeln!(
                        o,
                        "    store4(c_base, (wg.y * {}u + {}u + lane) * 4u + {i}u, (wg.x * {}u + {}u) * 4u, c{g}{c}_{t}_{j});",
                        S * g_n,
                        S * g,
                        S * t_n,
                        S * t + j
                    )
                    .unwrap();
                }
            }
        }
    }
}

fn nn1(o: &mut String, r_n: usize, t_n: usize) {
    o.push_str("    let rs4 = p.b_rs / 4u;\n    let n4 = p.n / 4u;\n");
    for r in 0..r_n {
        writeln!(
            o,
            "    let ar{r} = (p.a_off + z * p.a_bs) + min(wg.y * {}u + {}u + lane, p.m - 1u) * p.a_rs;",
            S * r_n,
            S * r
        )
        .unwrap();
    }
    columns_and_accumulators(o, r_n, t_n);
    o.push_str("    for (var k = 0u; k < p.k; k = k + 1u) {\n");
    for t in 0..t_n {
        writeln!(o, "        let l{t} = b[bc{t} + k * rs4];").unwrap();
    }
    for r in 0..r_n {
        writeln!(o, "        let a{r} = vec4<f32>(a_s[ar{r} + k * p.a_cs]);").unwrap();
    }
    for t in 0..t_n {
        for j in 0..S {
            writeln!(o, "        let b{t}_{j} = subgroupBroadcast(l{t}, {j}u);").unwrap();
            for r in 0..r_n {
                writeln!(o, "        c{r}_{t}_{j} = fma(a{r}, b{t}_{j}, c{r}_{t}_{j});").unwrap();
            }
        }
    }
    store_rows(o, r_n, t_n, true);
}

fn cols(o: &mut String, m_n: usize, t_n: usize) {
    o.push_str("    let rs4 = p.b_rs / 4u;\n    let n4 = p.n / 4u;\n");
    for h in 0..m_n / S {
        writeln!(o, "    let ar{h} = (p.a_off + z * p.a_bs) + min({}u + lane, p.m - 1u) * p.a_rs;", S * h).unwrap();
    }
    for t in 0..t_n {
        writeln!(
            o,
            "    let bc{t} = (p.b_off + z * p.b_bs) / 4u + min((wg.x * {t_n}u + {t}u) * {S}u + lane, n4 - 1u);"
        )
        .unwrap();
    }
    for i in 0..m_n {
        for t in 0..t_n {
            writeln!(o, "    var c{i}_{t} = vec4<f32>(0.0);").unwrap();
        }
    }
    o.push_str("    for (var k = 0u; k < p.k; k = k + 1u) {\n");
    for t in 0..t_n {
        writeln!(o, "        let l{t} = b[bc{t} + k * rs4];").unwrap();
    }
    for h in 0..m_n / S {
        writeln!(o, "        let sa{h} = a_s[ar{h} + k * p.a_cs];").unwrap();
    }
    for i in 0..m_n {
        writeln!(o, "        let a{i} = vec4<f32>(subgroupBroadcast(sa{}, {}u));", i / S, i % S).unwrap();
        for t in 0..t_n {
            writeln!(o, "        c{i}_{t} = fma(a{i}, l{t}, c{i}_{t});").unwrap();
        }
    }
    o.push_str("    }\n    let c_base = z * p.c_bs;\n");
    for i in 0..m_n {
        for t in 0..t_n {
            writeln!(o, "    store4(c_base, {i}u, ((wg.x * {t_n}u + {t}u) * {S}u + lane) * 4u, c{i}_{t});").unwrap();
        }
    }
}
