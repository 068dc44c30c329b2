//! Looking inside a model: a parameter summary grouped by module, per-parameter statistics of
//! values and gradients computed on the device (one read-back for the whole model), and a
//! gradient check that names what is missing, non-finite, exploding or vanishing.

use std::fmt;

use kiln_core::stats::{TensorStats, tensor_stats};
use kiln_core::{Module, Result, Tensor};
use serde::Serialize;

/// One row of a [`Summary`]: a parameter or a buffer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Dotted name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Elements.
    pub numel: usize,
    /// "yes"/"no" for parameters, "buffer" for buffers.
    pub trainable: String,
    /// Element type.
    pub dtype: String,
    /// Device name.
    pub device: String,
    /// Bytes.
    pub bytes: usize,
}

/// The rows of one module (the name up to the last dot; "" for the root) with subtotals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// Module path.
    pub module: String,
    /// Its parameters and buffers.
    pub rows: Vec<Row>,
    /// Parameter elements in the group.
    pub params: usize,
    /// Bytes in the group.
    pub bytes: usize,
}

/// A model's parameters and buffers, grouped by module, with totals (shared parameters once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Groups in traversal order.
    pub groups: Vec<Group>,
    /// All parameter elements.
    pub total: usize,
    /// Elements of trainable parameters.
    pub trainable: usize,
    /// Elements of frozen parameters.
    pub non_trainable: usize,
    /// Number of buffers.
    pub buffers: usize,
    /// Bytes of parameters and buffers.
    pub bytes: usize,
}

fn module_of(name: &str) -> String {
    name.rsplit_once('.').map(|(m, _)| m.to_string()).unwrap_or_default()
}

/// Groups rows by module prefix, in first-seen order.
pub fn group_rows(rows: Vec<Row>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for r in rows {
        let m = module_of(&r.name);
        let is_param = r.trainable != "buffer";
        let g = match groups.iter_mut().position(|g| g.module == m) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Group { module: m, rows: Vec::new(), params: 0, bytes: 0 });
                groups.last_mut().unwrap()
            }
        };
        if is_param {
            g.params += r.numel;
        }
        g.bytes += r.bytes;
        g.rows.push(r);
    }
    groups
}

/// The summary of `model`.
pub fn summary(model: &dyn Module) -> Summary {
    let mut rows = Vec::new();
    for (name, p) in model.named_parameters() {
        let numel = p.numel();
        rows.push(Row {
            name,
            shape: p.shape(),
            numel,
            trainable: if p.requires_grad() { "yes" } else { "no" }.into(),
            dtype: p.dtype().to_string(),
            device: p.device().name(),
            bytes: numel * p.dtype().size_in_bytes(),
        });
    }
    let nbuf = model.named_buffers().len();
    for (name, b) in model.named_buffers() {
        let numel: usize = b.shape().iter().product();
        rows.push(Row {
            name,
            shape: b.shape(),
            numel,
            trainable: "buffer".into(),
            dtype: b.dtype().to_string(),
            device: b.device().name(),
            bytes: numel * b.dtype().size_in_bytes(),
        });
    }
    let c = model.num_parameters();
    let bytes = rows.iter().map(|r| r.bytes).sum();
    // Order the rows so that each module's parameters and buffers sit together.
    let order: Vec<String> = model.named_modules().into_iter().map(|(n, _)| n).collect();
    let mut groups = group_rows(rows);
    groups.sort_by_key(|g| order.iter().position(|m| *m == g.module).unwrap_or(usize::MAX));
    Summary { groups, total: c.total, trainable: c.trainable, non_trainable: c.non_trainable, buffers: nbuf, bytes }
}

/// Renders rows as an aligned table (shared by `Summary` and the `kiln inspect` command).
pub fn render_table(f: &mut fmt::Formatter<'_>, header: &[&str], rows: &[Vec<String>]) -> fmt::Result {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
        for (i, c) in cells.iter().enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            let width = w[i];
            if c.parse::<f64>().is_ok() {
                write!(f, "{c:>width$}")?
            } else {
                write!(f, "{c:<width$}")?
            }
            if i + 1 < cells.len() {
                write!(f, "  ")?;
            }
        }
        writeln!(f)
    };
    line(f, &header.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    writeln!(f, "{}", "-".repeat(w.iter().sum::<usize>() + 2 * (w.len().saturating_sub(1))))?;
    for r in rows {
        line(f, r)?;
    }
    Ok(())
}

impl fmt::Display for Summary {
    /// An aligned table; the device is a column only when the tensors are on more than one,
    /// else one line under the table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = || self.groups.iter().flat_map(|g| &g.rows);
        let one_device = all().next().map(|r| &r.device).filter(|d| all().all(|r| &r.device == *d));
        let mut rows = Vec::new();
        for g in &self.groups {
            for r in &g.rows {
                let mut row = vec![
                    r.name.clone(),
                    format!("{:?}", r.shape),
                    r.numel.to_string(),
                    r.trainable.clone(),
                    r.dtype.clone(),
                ];
                if one_device.is_none() {
                    row.push(r.device.clone());
                }
                rows.push(row);
            }
            let label = if g.module.is_empty() { "(root)".to_string() } else { g.module.clone() };
            let mut row = vec![format!("  {label} subtotal"), String::new(), g.params.to_string()];
            row.resize(if one_device.is_none() { 6 } else { 5 }, String::new());
            rows.push(row);
        }
        let header: &[&str] = if one_device.is_none() {
            &["name", "shape", "numel", "trainable", "dtype", "device"]
        } else {
            &["name", "shape", "numel", "trainable", "dtype"]
        };
        render_table(f, header, &rows)?;
        if let Some(d) = one_device {
            writeln!(f, "device: {d}")?;
        }
        writeln!(
            f,
            "total parameters {}  trainable {}  non-trainable {}  buffers {}  bytes {}",
            self.total, self.trainable, self.non_trainable, self.buffers, self.bytes
        )
    }
}

/// What a parameter's gradient looks like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum GradState {
    /// A gradient, with its statistics.
    Present(TensorStats),
    /// The parameter is frozen (requires_grad false): no gradient by design.
    Frozen,
    /// It requires grad but backward did not reach it (unused in the loss, or zeroed since).
    NotReached,
}

/// Statistics of one parameter and of its gradient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamStats {
    /// Dotted name.
    pub name: String,
    /// Value statistics.
    pub value: TensorStats,
    /// Gradient statistics or why there are none.
    pub grad: GradState,
}

impl fmt::Display for ParamStats {
    /// Two lines: the value's statistics, and the gradient's (or why there is none).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: value {}", self.name, self.value)?;
        match &self.grad {
            GradState::Present(g) => write!(f, "{}: grad  {}", self.name, g),
            GradState::Frozen => write!(f, "{}: grad  none (frozen)", self.name),
            GradState::NotReached => write!(f, "{}: grad  none (not reached by backward)", self.name),
        }
    }
}

/// Statistics of every parameter and gradient of `model`: one kernel per tensor, one read-back
/// per device for the whole model.
pub fn parameter_stats(model: &dyn Module) -> Result<Vec<ParamStats>> {
    let named = model.named_parameters();
    let mut tensors: Vec<Tensor> = named.iter().map(|(_, p)| p.tensor().detach()).collect();
    let mut grad_slot = Vec::new();
    for (_, p) in &named {
        match p.grad() {
            Some(g) => {
                grad_slot.push(Some(tensors.len()));
                tensors.push(g);
            }
            None => grad_slot.push(None),
        }
    }
    let stats = tensor_stats(&tensors)?;
    Ok(named
        .iter()
        .enumerate()
        .map(|(i, (name, p))| ParamStats {
            name: name.clone(),
            value: stats[i],
            grad: match grad_slot[i] {
                Some(j) => GradState::Present(stats[j]),
                None if !p.requires_grad() => GradState::Frozen,
                None => GradState::NotReached,
            },
        })
        .collect())
}

/// Thresholds for [`check_gradients`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradThresholds {
    /// A gradient norm above this is reported as exploding.
    pub exploding: f64,
    /// A gradient norm below this (and a gradient present) is reported as vanishing.
    pub vanishing: f64,
}

impl Default for GradThresholds {
    fn default() -> Self {
        GradThresholds { exploding: 1e3, vanishing: 1e-7 }
    }
}

/// What [`check_gradients`] found. `is_healthy()` when nothing is wrong.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct GradientReport {
    /// Trainable parameters that backward did not reach.
    pub no_gradient: Vec<String>,
    /// Frozen parameters (listed for completeness; not a problem).
    pub frozen: Vec<String>,
    /// Parameters whose gradient has NaN or Inf, in traversal order.
    pub non_finite: Vec<String>,
    /// Parameters whose gradient norm exceeds the threshold, with the norm.
    pub exploding: Vec<(String, f64)>,
    /// Parameters whose gradient norm is below the threshold, with the norm.
    pub vanishing: Vec<(String, f64)>,
    /// Findings that are expected, not problems, with the reason: e.g. the vanishing gradient of
    /// a bias followed by batch normalisation (which subtracts the batch mean, so the bias
    /// cancels and its gradient is zero up to rounding).
    pub notes: Vec<(String, String)>,
}

impl GradientReport {
    /// True when no parameter lacks a gradient and none is non-finite, exploding or vanishing.
    pub fn is_healthy(&self) -> bool {
        self.no_gradient.is_empty()
            && self.non_finite.is_empty()
            && self.exploding.is_empty()
            && self.vanishing.is_empty()
    }

    /// The first parameter with a NaN/Inf gradient.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.non_finite.first().map(|s| s.as_str())
    }
}

impl fmt::Display for GradientReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_healthy() {
            writeln!(f, "gradients: healthy ({} frozen)", self.frozen.len())?;
            for (n, why) in &self.notes {
                writeln!(f, "note: {n}: {why}")?;
            }
            return Ok(());
        }
        if !self.no_gradient.is_empty() {
            writeln!(f, "no gradient (not reached by backward): {}", self.no_gradient.join(", "))?;
        }
        if let Some(first) = self.first_non_finite() {
            writeln!(f, "NaN/Inf gradients: {} (first: {first})", self.non_finite.join(", "))?;
        }
        for (n, v) in &self.exploding {
            writeln!(f, "exploding gradient: {n} (norm {v:.3e})")?;
        }
        for (n, v) in &self.vanishing {
            writeln!(f, "vanishing gradient: {n} (norm {v:.3e})")?;
        }
        for (n, why) in &self.notes {
            writeln!(f, "note: {n}: {why}")?;
        }
        Ok(())
    }
}

/// Checks every parameter's gradient after `backward()`.
pub fn check_gradients(model: &dyn Module, thresholds: GradThresholds) -> Result<GradientReport> {
    let mut r = GradientReport::default();
    for s in parameter_stats(model)? {
        match s.grad {
            GradState::Frozen => r.frozen.push(s.name),
            GradState::NotReached => r.no_gradient.push(s.name),
            GradState::Present(g) => {
                if !g.is_finite() {
                    r.non_finite.push(s.name);
                } else if g.norm > thresholds.exploding {
                    r.exploding.push((s.name, g.norm));
                } else if g.norm < thresholds.vanishing {
                    match normalised_after(model, &s.name) {
                        Some(bn) => r.notes.push((
                            s.name,
                            format!(
                                "vanishing gradient (norm {:.3e}) as expected: the next module, {bn}, is a batch \
                                 normalisation, which subtracts the batch mean, so this bias cancels",
                                g.norm
                            ),
                        )),
                        None => r.vanishing.push((s.name, g.norm)),
                    }
                }
            }
        }
    }
    Ok(r)
}

/// For a parameter `..owner.bias`: the path of the module registered right after `owner` in its
/// parent (its next sibling, which in a `Sequential` is the next layer) when that module is a
/// batch normalisation (it has a `running_mean` buffer). There a bias's gradient is zero by
/// construction. `None` for anything else, or where the order says nothing (no next sibling).
fn normalised_after(model: &dyn Module, param: &str) -> Option<String> {
    let (owner, leaf) = param.rsplit_once('.')?;
    if leaf != "bias" {
        return None;
    }
    let (parent, own) = owner.rsplit_once('.').unwrap_or(("", owner));
    let children = model.get_submodule(parent)?.children();
    let i = children.iter().position(|(n, _)| n == own)?;
    let (next, m) = children.get(i + 1)?;
    let norm = m.named_buffers().iter().any(|(n, _)| n == "running_mean");
    norm.then(|| if parent.is_empty() { next.clone() } else { format!("{parent}.{next}") })
}
