//! `ParameterMonitor`: records every parameter's value and gradient statistics during training
//! (one read-back for the whole model per record), exports the history as CSV and JSON, and
//! draws charts (SVG and PNG) of each parameter's mean ± std and gradient norm over time and of
//! the weights' histograms.

use std::path::{Path, PathBuf};

use kiln_core::stats::{TensorStats, histogram};
use kiln_core::{Error, Module, Result};
use serde::Serialize;

use crate::inspect::{GradState, parameter_stats};
use crate::plot::{Series, histogram_chart, line_chart};

/// One parameter at one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// The step (or epoch) given to `record`.
    pub step: u64,
    /// Dotted parameter name.
    pub name: String,
    /// Value statistics.
    pub value: TensorStats,
    /// Gradient statistics or why there are none.
    pub grad: GradState,
}

/// Records parameter statistics every `every` steps.
#[derive(Debug, Clone)]
pub struct ParameterMonitor {
    every: u64,
    history: Vec<Record>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { op: "ParameterMonitor", path: path.display().to_string(), msg: e.to_string() }
}

/// A parameter name as a file name.
fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' { c } else { '_' }).collect()
}

impl ParameterMonitor {
    /// Records on steps that are multiples of `every` (at least 1).
    pub fn new(every: u64) -> ParameterMonitor {
        ParameterMonitor { every: every.max(1), history: Vec::new() }
    }

    /// Records if `step` is a multiple of `every`; returns whether it did.
    pub fn step(&mut self, step: u64, model: &dyn Module) -> Result<bool> {
        if step % self.every != 0 {
            return Ok(false);
        }
        self.record(step, model)?;
        Ok(true)
    }

    /// Records now (one read-back for the whole model).
    pub fn record(&mut self, step: u64, model: &dyn Module) -> Result<()> {
        for s in parameter_stats(model)? {
            self.history.push(Record { step, name: s.name, value: s.value, grad: s.grad });
        }
        Ok(())
    }

    /// Everything recorded, in order.
    pub fn history(&self) -> &[Record] {
        &self.history
    }

    /// The history as CSV: one row per (step, parameter).
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "step,name,mean,std,min,max,norm,zero_fraction,nan,inf,grad,grad_mean,grad_std,grad_norm,grad_nan,grad_inf\n",
        );
        for r in &self.history {
            let v = &r.value;
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{},",
                r.step, r.name, v.mean, v.std, v.min, v.max, v.norm, v.zero_fraction, v.nan, v.inf
            );
            s += &match &r.grad {
                GradState::Present(g) => format!("present,{},{},{},{},{}\n", g.mean, g.std, g.norm, g.nan, g.inf),
                GradState::Frozen => "frozen,,,,,\n".to_string(),
                GradState::NotReached => "none,,,,,\n".to_string(),
            };
        }
        s
    }

    /// The history as JSON (NaN statistics become null).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.history)
            .map_err(|e| Error::invalid("ParameterMonitor::to_json", e.to_string()))
    }

    /// Writes `history.csv`, `history.json` and a chart per parameter (`<name>.svg`/`.png`:
    /// mean, mean ± std and gradient norm over the recorded steps) into `dir`; returns the files.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut files = Vec::new();
        let csv = dir.join("history.csv");
        std::fs::write(&csv, self.to_csv()).map_err(|e| io(&csv, e))?;
        let json = dir.join("history.json");
        std::fs::write(&json, self.to_json()?).map_err(|e| io(&json, e))?;
        files.extend([csv, json]);
        let mut names: Vec<&str> = Vec::new();
        for r in &self.history {
            if !names.contains(&r.name.as_str()) {
                names.push(&r.name);
            }
        }
        for name in names {
            let rs: Vec<&Record> = self.history.iter().filter(|r| r.name == name).collect();
            let pts = |f: &dyn Fn(&Record) -> Option<f64>| -> Vec<(f64, f64)> {
                rs.iter().filter_map(|r| f(r).map(|v| (r.step as f64, v))).collect()
            };
            let series = vec![
                Series { label: "mean".into(), points: pts(&|r| Some(r.value.mean)) },
                Series { label: "mean + std".into(), points: pts(&|r| Some(r.value.mean + r.value.std)) },
                Series { label: "mean - std".into(), points: pts(&|r| Some(r.value.mean - r.value.std)) },
                Series {
                    label: "grad norm".into(),
                    points: pts(&|r| match &r.grad {
                        GradState::Present(g) => Some(g.norm),
                        _ => None,
                    }),
                },
            ];
            files.extend(line_chart(&dir.join(file_stem(name)), name, "step", &series)?);
        }
        Ok(files)
    }
}

/// Writes a histogram chart (`<name>.hist.svg`/`.png`, `bins` bins over [min, max]) of every
/// parameter of `model` into `dir`, counted on the device.
pub fn write_histograms(model: &dyn Module, dir: impl AsRef<Path>, bins: usize) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut files = Vec::new();
    // parameter_stats lists the parameters in named_parameters() order: one walk of the model.
    for (s, (_, p)) in parameter_stats(model)?.into_iter().zip(model.named_parameters()) {
        let (lo, hi) = (s.value.min, s.value.max);
        if !lo.is_finite() {
            continue;
        }
        let counts = histogram(&p.tensor().detach(), bins, lo as f32, hi as f32)?;
        let base = dir.join(format!("{}.hist", file_stem(&s.name)));
        files.extend(histogram_chart(&base, &format!("{} ({} values)", s.name, s.value.numel), lo, hi, &counts)?);
    }
    Ok(files)
}
