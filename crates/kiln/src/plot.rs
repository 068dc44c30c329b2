//! Charts as SVG and PNG (plotters, with the DejaVu Sans font embedded so that nothing depends
//! on the system's fonts): line charts of values over steps and histograms.

use std::path::{Path, PathBuf};
use std::sync::Once;

use kiln_core::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { op: "plot", path: path.display().to_string(), msg: e.to_string() }
}

/// A named series of (x, y) points.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let pad = lo.abs().max(1.0) * 0.05;
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn draw_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    series: &[Series],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|x| e(&x))?;
    chart.configure_mesh().x_desc(x_desc).draw().map_err(|x| e(&x))?;
    let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, s) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

fn draw_hist<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    lo: f64,
    hi: f64,
    counts: &[u32],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(lo..hi, 0.0..top)
        .map_err(|x| e(&x))?;
    chart.configure_mesh().x_desc("value").y_desc("count").draw().map_err(|x| e(&x))?;
    let w = (hi - lo) / counts.len().max(1) as f64;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x = lo + i as f64 * w;
            Rectangle::new([(x, 0.0), (x + w, c as f64)], BLUE.mix(0.6).filled())
        }))
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

/// `<base>.svg` and `<base>.png` (appended: names such as "fc1.weight" keep their dots).
fn with_exts(base: &Path) -> (PathBuf, PathBuf) {
    let s = base.as_os_str().to_string_lossy();
    (PathBuf::from(format!("{s}.svg")), PathBuf::from(format!("{s}.png")))
}

/// Writes `<base>.svg` and `<base>.png` with a line chart; returns both paths.
pub fn line_chart(base: &Path, title: &str, x_desc: &str, series: &[Series]) -> Result<Vec<PathBuf>> {
    font();
    let (svg, png) = with_exts(base);
    draw_lines(SVGBackend::new(&svg, (800, 480)).into_drawing_area(), title, x_desc, series)
        .map_err(|x| err(&svg, x))?;
    draw_lines(BitMapBackend::new(&png, (800, 480)).into_drawing_area(), title, x_desc, series)
        .map_err(|x| err(&png, x))?;
    Ok(vec![svg, png])
}

/// Writes `<base>.svg` and `<base>.png` with a histogram of `counts` over [lo, hi].
pub fn histogram_chart(base: &Path, title: &str, lo: f64, hi: f64, counts: &[u32]) -> Result<Vec<PathBuf>> {
    font();
    let (svg, png) = with_exts(base);
    draw_hist(SVGBackend::new(&svg, (800, 480)).into_drawing_area(), title, lo, hi, counts)
        .map_err(|x| err(&svg, x))?;
    draw_hist(BitMapBackend::new(&png, (800, 480)).into_drawing_area(), title, lo, hi, counts)
        .map_err(|x| err(&png, x))?;
    Ok(vec![svg, png])
}
