//! Data loading: the `Dataset` trait, `TensorDataset`, a `DataLoader` that batches (with a
//! seeded shuffle and `drop_last`) and prepares the next batches on a background thread while
//! the device computes, and a CSV reader for numeric data (plain or gzip-compressed).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use kiln_core::{DType, Device, Error, Result, Tensor};

/// A batch gathered on the host: features and targets, row-major, with their shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Features, `x_shape` row-major.
    pub x: Vec<f32>,
    /// Shape of `x` (batch first).
    pub x_shape: Vec<usize>,
    /// Targets: class labels or values.
    pub y: Targets,
    /// Shape of `y` (batch first).
    pub y_shape: Vec<usize>,
}

/// Targets of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Class labels (become a `U32` tensor).
    Labels(Vec<u32>),
    /// Values (become an `F32` tensor).
    Values(Vec<f32>),
}

impl HostBatch {
    /// Uploads the batch to `dev` as (x, y) tensors.
    pub fn to_device(&self, dev: &Device) -> Result<(Tensor, Tensor)> {
        let x = Tensor::from_slice(&self.x, &self.x_shape, dev)?;
        let y = match &self.y {
            Targets::Labels(l) => Tensor::from_vec_u32(l.clone(), &self.y_shape, dev)?,
            Targets::Values(v) => Tensor::from_slice(v, &self.y_shape, dev)?,
        };
        Ok((x, y))
    }
}

/// A source of samples that can be gathered into batches by index. Implementations are cheap
/// to clone (shared data) so that a loader's background thread can hold one.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True without samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Gathers the samples at `indices` (each < len()) into one host batch.
    fn get_batch(&self, indices: &[usize]) -> Result<HostBatch>;
}

/// Features and targets held on the host, split along the first dim (PyTorch's TensorDataset).
#[derive(Clone, Debug)]
pub struct TensorDataset {
    x: Arc<Vec<f32>>,
    x_row: Vec<usize>,
    y: Arc<Targets>,
    y_row: Vec<usize>,
    n: usize,
}

impl TensorDataset {
    /// From tensors `x` [N, ...] (F32) and `y` [N, ...] (U32 or I64 labels, or F32 values), on any
    /// device (they are copied to the host once; I64 labels become U32 batches).
    pub fn new(x: &Tensor, y: &Tensor) -> Result<TensorDataset> {
        if x.rank() == 0 || y.rank() == 0 || x.shape()[0] != y.shape()[0] {
            return Err(Error::ShapeMismatch {
                op: "TensorDataset::new",
                lhs: x.shape().to_vec(),
                rhs: y.shape().to_vec(),
            });
        }
        if x.dtype() != DType::F32 {
            return Err(Error::DType {
                op: "TensorDataset::new",
                expected: DType::F32,
                got: x.dtype(),
                shape: x.shape().to_vec(),
            });
        }
        let targets = match y.dtype() {
            DType::U32 => Targets::Labels(y.to_vec_u32()?),
            DType::F32 => Targets::Values(y.to_vec()?),
            // PyTorch's int64 labels: converted once here (a negative label is an error).
            DType::I64 => Targets::Labels(
                y.to_dtype(DType::U32)
                    .map_err(|e| Error::invalid("TensorDataset::new", format!("labels: {e}")))?
                    .to_vec_u32()?,
            ),
        };
        Ok(TensorDataset {
            x: Arc::new(x.to_vec()?),
            x_row: x.shape()[1..].to_vec(),
            y: Arc::new(targets),
            y_row: y.shape()[1..].to_vec(),
            n: x.shape()[0],
        })
    }

    /// From host rows: `x` with `features` values per sample and one label per sample.
    pub fn from_rows(x: Vec<f32>, features: usize, labels: Vec<u32>) -> Result<TensorDataset> {
        if features == 0 || x.len() != labels.len() * features {
            return Err(Error::DataLength {
                op: "TensorDataset::from_rows",
                len: x.len(),
                shape: vec![labels.len(), features],
                numel: labels.len() * features,
            });
        }
        Ok(TensorDataset {
            n: labels.len(),
            x: Arc::new(x),
            x_row: vec![features],
            y: Arc::new(Targets::Labels(labels)),
            y_row: vec![],
        })
    }

    /// The samples at `indices` as a new dataset (for splits).
    pub fn subset(&self, indices: &[usize]) -> Result<TensorDataset> {
        let b = self.get_batch(indices)?;
        Ok(TensorDataset {
            x: Arc::new(b.x),
            x_row: self.x_row.clone(),
            y: Arc::new(b.y),
            y_row: self.y_row.clone(),
            n: indices.len(),
        })
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.n
    }

    fn get_batch(&self, indices: &[usize]) -> Result<HostBatch> {
        let xr: usize = self.x_row.iter().product();
        let yr: usize = self.y_row.iter().product();
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.n) {
            return Err(Error::invalid(
                "Dataset::get_batch",
                format!("index {bad} out of range for {} samples", self.n),
            ));
        }
        let mut x = Vec::with_capacity(indices.len() * xr);
        for &i in indices {
            x.extend_from_slice(&self.x[i * xr..(i + 1) * xr]);
        }
        let y = match &*self.y {
            Targets::Labels(l) => {
                Targets::Labels(indices.iter().flat_map(|&i| l[i * yr..(i + 1) * yr].iter().copied()).collect())
            }
            Targets::Values(v) => {
                Targets::Values(indices.iter().flat_map(|&i| v[i * yr..(i + 1) * yr].iter().copied()).collect())
            }
        };
        let with_batch = |row: &[usize]| std::iter::once(indices.len()).chain(row.iter().copied()).collect();
        Ok(HostBatch { x, x_shape: with_batch(&self.x_row), y, y_shape: with_batch(&self.y_row) })
    }
}

/// A seeded permutation of 0..n (Fisher-Yates on SplitMix64), the same on every platform.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    };
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Batches of a dataset on a device: `for (x, y) in loader.iter() { ... }`. With
/// `shuffle(seed)`, each pass (epoch) uses a new permutation derived from the seed and the
/// epoch number, so a run is reproducible and a resumed run can `set_epoch`. The next batches
/// are gathered and uploaded on a background thread (two ahead) while the caller computes.
pub struct DataLoader<D: Dataset + Clone + 'static> {
    dataset: D,
    batch_size: usize,
    shuffle: Option<u64>,
    drop_last: bool,
    device: Device,
    epoch: AtomicU64,
}

impl<D: Dataset + Clone + 'static> DataLoader<D> {
    /// Batches of `batch_size` in order, on the CPU, keeping a last partial batch.
    pub fn new(dataset: &D, batch_size: usize) -> DataLoader<D> {
        DataLoader {
            dataset: dataset.clone(),
            batch_size: batch_size.max(1),
            shuffle: None,
            drop_last: false,
            device: Device::Cpu,
            epoch: AtomicU64::new(0),
        }
    }

    /// Shuffles every epoch, seeded.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.shuffle = Some(seed);
        self
    }

    /// Drops a last batch smaller than `batch_size`.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Where the batches are placed.
    pub fn device(mut self, dev: &Device) -> Self {
        self.device = dev.clone();
        self
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last { n / self.batch_size } else { n.div_ceil(self.batch_size) }
    }

    /// True when an epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The epoch the next `iter()` will run (0 at first).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Sets the epoch the next `iter()` runs (for resuming a shuffled run).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    fn order(&self, epoch: u64) -> Vec<usize> {
        let n = self.dataset.len();
        match self.shuffle {
            Some(seed) => permutation(n, seed ^ epoch.wrapping_mul(0xA24BAED4963EE407)),
            None => (0..n).collect(),
        }
    }

    /// One epoch of batches as `Result`s (an upload that fails ends the epoch with its error).
    pub fn try_iter(&self) -> BatchIter {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        let order = self.order(epoch);
        let chunks: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .filter(|c| !self.drop_last || c.len() == self.batch_size)
            .map(|c| c.to_vec())
            .collect();
        let (tx, rx) = mpsc::sync_channel(2);
        let ds = self.dataset.clone();
        let dev = self.device.clone();
        let worker = std::thread::Builder::new().name("kiln-data".into()).spawn(move || {
            for idx in chunks {
                let b = ds.get_batch(&idx).and_then(|b| b.to_device(&dev));
                let failed = b.is_err();
                if tx.send(b).is_err() || failed {
                    break;
                }
            }
        });
        match worker {
            Ok(_) => BatchIter { rx: Some(rx), done: false },
            Err(e) => {
                let (tx, rx) = mpsc::sync_channel(1);
                let _ = tx.send(Err(Error::invalid("DataLoader", format!("cannot start the loader thread: {e}"))));
                BatchIter { rx: Some(rx), done: false }
            }
        }
    }

    /// One epoch of `(x, y)` batches. Panics only if the device fails mid-epoch (a lost GPU);
    /// use [`DataLoader::try_iter`] to handle that as an error.
    pub fn iter(&self) -> impl Iterator<Item = (Tensor, Tensor)> {
        self.try_iter().map(|b| b.unwrap_or_else(|e| panic!("DataLoader: {e}")))
    }
}

/// The batches of one epoch, produced by the loader's background thread.
pub struct BatchIter {
    rx: Option<mpsc::Receiver<Result<(Tensor, Tensor)>>>,
    done: bool,
}

impl Iterator for BatchIter {
    type Item = Result<(Tensor, Tensor)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rx.as_ref()?.recv() {
            Ok(Ok(b)) => Some(Ok(b)),
            Ok(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            Err(_) => {
                self.done = true;
                None
            }
        }
    }
}

/// Numeric CSV contents: `rows` x `cols` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Csv {
    /// Values.
    pub values: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The header's column names, when `header` was set.
    pub header: Vec<String>,
}

impl Csv {
    /// Splits off column `label_col` as class labels (non-negative integers) and returns a
    /// dataset of the other columns.
    pub fn into_dataset(self, label_col: usize) -> Result<TensorDataset> {
        if label_col >= self.cols {
            return Err(Error::invalid(
                "Csv::into_dataset",
                format!("label column {label_col} of {} columns", self.cols),
            ));
        }
        let mut x = Vec::with_capacity(self.rows * (self.cols - 1));
        let mut y = Vec::with_capacity(self.rows);
        for r in 0..self.rows {
            let row = &self.values[r * self.cols..(r + 1) * self.cols];
            let l = row[label_col];
            if l < 0.0 || l.fract() != 0.0 || l > u32::MAX as f32 {
                return Err(Error::invalid(
                    "Csv::into_dataset",
                    format!("row {}: label {l} is not a class index", r + 1),
                ));
            }
            y.push(l as u32);
            x.extend(row.iter().enumerate().filter(|(c, _)| *c != label_col).map(|(_, v)| *v));
        }
        TensorDataset::from_rows(x, self.cols - 1, y)
    }
}

/// Reads a numeric CSV file (gzip-compressed when the name ends in `.gz`), comma-separated,
/// optionally with a header line. Every row must have the same number of columns; an empty or
/// non-numeric field is an error naming the file, line and column.
pub fn read_csv(path: impl AsRef<Path>, header: bool) -> Result<Csv> {
    let path = path.as_ref();
    let err = |msg: String| Error::Io { op: "read_csv", path: path.display().to_string(), msg };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text).map_err(|e| err(e.to_string()))?;
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text).map_err(|e| err(e.to_string()))?;
    }
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let mut names = Vec::new();
    if header {
        if let Some((_, h)) = lines.next() {
            names = h.split(',').map(|s| s.trim().to_string()).collect();
        }
    }
    let mut values = Vec::new();
    let mut cols = if header { names.len() } else { 0 };
    let mut rows = 0;
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if cols == 0 {
            cols = fields.len();
        }
        if fields.len() != cols {
            return Err(err(format!("line {}: {} columns, expected {cols}", i + 1, fields.len())));
        }
        for (c, f) in fields.iter().enumerate() {
            let v: f32 = f
                .trim()
                .parse()
                .map_err(|_| err(format!("line {}, column {}: {:?} is not a number", i + 1, c + 1, f.trim())))?;
            values.push(v);
        }
        rows += 1;
    }
    Ok(Csv { values, rows, cols, header: names })
}
