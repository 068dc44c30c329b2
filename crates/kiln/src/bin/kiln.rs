//! The `kiln` command: look at adapters and at any safetensors file (kiln's or PyTorch's).
//!
//! ```text
//! kiln devices                                   every adapter wgpu sees, and the one kiln picks
//! kiln inspect FILE [--stats] [--hist DIR]       tensors grouped by module, totals, statistics, histograms
//! kiln diff A B                                  keys, shapes, dtypes and values that differ
//! ```
//! Errors (a missing or invalid file) print a message and exit with status 1.

use std::fmt;
use std::path::{Path, PathBuf};

use kiln::inspect::{Row, group_rows, render_table};
use kiln::io::{load_safetensors, read_header};
use kiln::plot::histogram_chart;
use kiln::stats::{histogram, tensor_stats};
use kiln::{Device, Result};

const USAGE: &str = "usage:
  kiln devices
  kiln inspect FILE.safetensors [--stats] [--hist DIR]
  kiln diff A.safetensors B.safetensors";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(|s| s.as_str()) {
        Some("devices") => devices(),
        Some("inspect") if args.len() >= 2 => {
            let stats = args.iter().any(|a| a == "--stats");
            let hist = args.iter().position(|a| a == "--hist").map(|i| args.get(i + 1).map(PathBuf::from));
            match hist {
                Some(None) => Err(kiln::Error::invalid("kiln inspect", "--hist needs a folder")),
                h => inspect(Path::new(&args[1]), stats, h.flatten()),
            }
        }
        Some("diff") if args.len() == 3 => diff(Path::new(&args[1]), Path::new(&args[2])),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1 << 20) as f64)
}

fn devices() -> Result<()> {
    let reports = kiln::kiln_device::adapter_reports();
    if reports.is_empty() {
        println!("no adapters: {}", kiln::kiln_device::INSTALL_HINT);
        return Ok(());
    }
    for r in &reports {
        let s = &r.summary;
        println!("{}{} [{}, {}]", if r.chosen { "* " } else { "  " }, s.name, s.backend, s.device_type);
        println!("    driver: {}", if s.driver.is_empty() { "-" } else { &s.driver });
        println!(
            "    max storage binding {}, max buffer {}, workgroup memory {} KiB, {} invocations/workgroup, {} storage buffers/stage",
            mib(r.max_storage_binding),
            mib(r.max_buffer),
            r.workgroup_storage / 1024,
            r.invocations_per_workgroup,
            r.storage_buffers_per_stage
        );
        println!(
            "    f16: {}, subgroups: {}",
            if r.f16 { "yes" } else { "no" },
            if r.subgroups { "yes" } else { "no" }
        );
    }
    println!("(* = the adapter Device::gpu() picks)");
    Ok(())
}

/// Formats a table through `render_table`.
struct Table<'a>(&'a [&'a str], Vec<Vec<String>>);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render_table(f, self.0, &self.1)
    }
}

fn num(v: f64) -> String {
    if v.is_nan() { "nan".into() } else { format!("{v:.6}") }
}

fn inspect(path: &Path, stats: bool, hist: Option<PathBuf>) -> Result<()> {
    let (entries, meta) = read_header(path)?;
    let rows: Vec<Row> = entries
        .iter()
        .map(|e| Row {
            name: e.name.clone(),
            shape: e.shape.clone(),
            numel: e.shape.iter().product(),
            trainable: String::new(),
            dtype: e.dtype.clone(),
            device: String::new(),
            bytes: e.bytes,
        })
        .collect();
    let groups = group_rows(rows);
    let mut table = Vec::new();
    for g in &groups {
        for r in &g.rows {
            table.push(vec![
                r.name.clone(),
                format!("{:?}", r.shape),
                r.numel.to_string(),
                r.dtype.clone(),
                r.bytes.to_string(),
            ]);
        }
        let label = if g.module.is_empty() { "(root)".to_string() } else { g.module.clone() };
        let numel: usize = g.rows.iter().map(|r| r.numel).sum();
        table.push(vec![
            format!("  {label} subtotal"),
            String::new(),
            numel.to_string(),
            String::new(),
            g.bytes.to_string(),
        ]);
    }
    println!("{}", path.display());
    print!("{}", Table(&["name", "shape", "numel", "dtype", "bytes"], table));
    let numel: usize = entries.iter().map(|e| e.shape.iter().product::<usize>()).sum();
    let bytes: usize = entries.iter().map(|e| e.bytes).sum();
    println!("total: {} tensors, {numel} elements, {bytes} bytes", entries.len());
    if !meta.is_empty() {
        let mut keys: Vec<&String> = meta.keys().collect();
        keys.sort();
        println!("metadata: {}", keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "));
    }
    if stats || hist.is_some() {
        let sd = load_safetensors(path, &Device::cpu())?;
        let tensors: Vec<kiln::Tensor> = entries.iter().map(|e| sd.get(&e.name).expect("loaded").clone()).collect();
        let st = tensor_stats(&tensors)?;
        if stats {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .zip(&st)
                .map(|(e, s)| {
                    vec![
                        e.name.clone(),
                        num(s.mean),
                        num(s.std),
                        num(s.min),
                        num(s.max),
                        num(s.norm),
                        format!("{:.4}", s.zero_fraction),
                        s.nan.to_string(),
                        s.inf.to_string(),
                    ]
                })
                .collect();
            print!("{}", Table(&["name", "mean", "std", "min", "max", "norm", "zeros", "nan", "inf"], rows));
        }
        if let Some(dir) = hist {
            std::fs::create_dir_all(&dir).map_err(|e| kiln::Error::Io {
                op: "kiln inspect",
                path: dir.display().to_string(),
                msg: e.to_string(),
            })?;
            let mut n = 0;
            for (t, (e, s)) in tensors.iter().zip(entries.iter().zip(&st)) {
                if !s.min.is_finite() || t.dtype() != kiln::DType::F32 {
                    continue;
                }
                let counts = histogram(t, 40, s.min as f32, s.max as f32)?;
                histogram_chart(&dir.join(format!("{}.hist", e.name)), &e.name, s.min, s.max, &counts)?;
                n += 1;
            }
            println!("histograms: {n} charts (SVG and PNG) in {}", dir.display());
        }
    }
    Ok(())
}

fn diff(a: &Path, b: &Path) -> Result<()> {
    let (ha, _) = read_header(a)?;
    let (hb, _) = read_header(b)?;
    let cpu = Device::cpu();
    let (sa, sb) = (load_safetensors(a, &cpu)?, load_safetensors(b, &cpu)?);
    let only_a: Vec<&str> =
        ha.iter().filter(|e| !hb.iter().any(|f| f.name == e.name)).map(|e| e.name.as_str()).collect();
    let only_b: Vec<&str> =
        hb.iter().filter(|e| !ha.iter().any(|f| f.name == e.name)).map(|e| e.name.as_str()).collect();
    println!("only in {}: {}", a.display(), if only_a.is_empty() { "-".to_string() } else { only_a.join(", ") });
    println!("only in {}: {}", b.display(), if only_b.is_empty() { "-".to_string() } else { only_b.join(", ") });
    let mut rows = Vec::new();
    let mut differing = 0;
    for ea in &ha {
        let Some(eb) = hb.iter().find(|e| e.name == ea.name) else { continue };
        if ea.shape != eb.shape {
            rows.push(vec![
                ea.name.clone(),
                format!("shape {:?} vs {:?}", ea.shape, eb.shape),
                String::new(),
                String::new(),
            ]);
            differing += 1;
            continue;
        }
        let (va, vb) = (sa.get(&ea.name).expect("loaded").to_vec()?, sb.get(&ea.name).expect("loaded").to_vec()?);
        let mut max_abs = 0f64;
        let mut max_rel = 0f64;
        for (x, y) in va.iter().zip(&vb) {
            let d = (*x as f64 - *y as f64).abs();
            if d.is_nan() && !(x.is_nan() && y.is_nan()) {
                max_abs = f64::NAN;
            }
            max_abs = max_abs.max(d);
            max_rel = max_rel.max(d / (*y as f64).abs().max(1e-12));
        }
        let dtype = if ea.dtype == eb.dtype { ea.dtype.clone() } else { format!("{} vs {}", ea.dtype, eb.dtype) };
        if max_abs != 0.0 || ea.dtype != eb.dtype {
            differing += 1;
        }
        rows.push(vec![ea.name.clone(), dtype, format!("{max_abs:.3e}"), format!("{max_rel:.3e}")]);
    }
    print!("{}", Table(&["name", "dtype", "max |a-b|", "max rel"], rows));
    println!(
        "{} common tensors, {differing} differ; {} only in A, {} only in B",
        ha.len() - only_a.len(),
        only_a.len(),
        only_b.len()
    );
    Ok(())
}
