//! kiln-dist: data-parallel training across processes and machines on MPI.
//!
//! Every rank holds the whole model and trains on its own shard of the data; after `backward()`
//! [`DistributedDataParallel::sync_gradients`] averages the gradients across ranks with
//! bucketed all-reduces (one read-back and one upload per bucket, not per parameter), so every
//! rank takes the same optimizer step. Gradients are reduced on the host, which is why it works
//! whatever GPU (or CPU) each rank has. Launch with `mpirun -np N program` (or `srun`).
//!
//! With the `mpi` feature off (the default), [`init`] gives a world of one process: the same
//! program runs unchanged on one machine and the default build needs no MPI.

#![warn(missing_docs)]

use kiln::{Buffer, Device, Error, Module, Parameter, Result, Tensor};

/// One process's view of the job: its rank and the world size.
pub struct Dist {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    universe: Option<mpi::environment::Universe>,
}

/// Starts MPI (once per process) and returns this process's view. Without the `mpi` feature,
/// or when the program was not started by an MPI launcher that provides a world, this is rank 0
/// of 1.
pub fn init() -> Result<Dist> {
    #[cfg(feature = "mpi")]
    {
        use mpi::traits::Communicator;
        let universe = mpi::initialize().ok_or_else(|| Error::invalid("dist::init", "MPI was already initialised"))?;
        let world = universe.world();
        return Ok(Dist { rank: world.rank() as usize, size: world.size() as usize, universe: Some(universe) });
    }
    #[allow(unreachable_code)]
    Ok(Dist {
        rank: 0,
        size: 1,
        #[cfg(feature = "mpi")]
        universe: None,
    })
}

impl Dist {
    /// This process's rank, 0..size.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// True on rank 0 (where checkpoints and logs are written).
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Runs `f` on rank 0 only (saving a checkpoint, printing); other ranks get `None`.
    pub fn on_main<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        self.is_main().then(f)
    }

    /// Sums `buf` elementwise across ranks, in place.
    pub fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        #[cfg(feature = "mpi")]
        if let Some(u) = &self.universe {
            use mpi::collective::SystemOperation;
            use mpi::traits::CommunicatorCollectives;
            let send = buf.to_vec();
            u.world().all_reduce_into(&send[..], buf, SystemOperation::sum());
        }
        let _ = buf;
        Ok(())
    }

    /// Replaces `buf` with rank `root`'s values on every rank.
    pub fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        if root >= self.size {
            return Err(Error::invalid("broadcast", format!("root {root} of {} ranks", self.size)));
        }
        #[cfg(feature = "mpi")]
        if let Some(u) = &self.universe {
            use mpi::traits::{Communicator, Root};
            u.world().process_at_rank(root as i32).broadcast_into(buf);
        }
        let _ = buf;
        Ok(())
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) {
        #[cfg(feature = "mpi")]
        if let Some(u) = &self.universe {
            use mpi::traits::CommunicatorCollectives;
            u.world().barrier();
        }
    }
}

/// Wraps a model for data-parallel training (PyTorch's `DistributedDataParallel`).
pub struct DistributedDataParallel<'a, M: Module + ?Sized> {
    model: &'a M,
    dist: &'a Dist,
    bucket_elems: usize,
}

fn broadcast_tensor(dist: &Dist, t: &Tensor) -> Result<Tensor> {
    let dev = t.device();
    let mut v = t.to_vec()?;
    dist.broadcast(&mut v, 0)?;
    Tensor::from_vec(v, t.shape(), &dev)
}

impl<'a, M: Module + ?Sized> DistributedDataParallel<'a, M> {
    /// Broadcasts rank 0's parameters and (float) buffers to every rank, so all start equal.
    /// Buckets hold about 25 MB of gradients, as PyTorch's default.
    pub fn new(model: &'a M, dist: &'a Dist) -> Result<Self> {
        for p in model.parameters() {
            p.set(broadcast_tensor(dist, &p.tensor().detach())?)?;
        }
        for b in model.buffers() {
            if b.dtype() == kiln::DType::F32 {
                b.set(broadcast_tensor(dist, &b.tensor())?)?;
            }
        }
        Ok(DistributedDataParallel { model, dist, bucket_elems: 25 * (1 << 20) / 4 })
    }

    /// Sets the bucket size in elements (at least 1).
    pub fn with_bucket_elems(mut self, elems: usize) -> Self {
        self.bucket_elems = elems.max(1);
        self
    }

    /// The wrapped model.
    pub fn module(&self) -> &M {
        self.model
    }

    /// Averages the gradients of every trainable parameter across ranks (after `backward()`,
    /// before the optimizer step). A parameter without a gradient on this rank contributes
    /// zeros. Frozen parameters are skipped. Returns the bytes exchanged by this rank.
    pub fn sync_gradients(&self) -> Result<usize> {
        let params: Vec<Parameter> = self.model.parameters().into_iter().filter(|p| p.requires_grad()).collect();
        let mut bytes = 0;
        let mut start = 0;
        while start < params.len() {
            // A bucket: consecutive parameters up to bucket_elems (at least one).
            let mut end = start;
            let mut elems = 0;
            while end < params.len() && (end == start || elems + params[end].numel() <= self.bucket_elems) {
                elems += params[end].numel();
                end += 1;
            }
            let bucket = &params[start..end];
            let dev: Device = bucket[0].device();
            let grads: Vec<Tensor> = bucket
                .iter()
                .map(|p| match p.grad() {
                    Some(g) => Ok(g),
                    None => Tensor::zeros(&p.shape(), &p.device()),
                })
                .collect::<Result<_>>()?;
            let flat = Tensor::concat_flat(&grads, &dev)?; // on the device
            let mut host = flat.to_vec()?; // one read-back per bucket
            self.dist.all_reduce_sum(&mut host)?;
            let n = self.dist.size() as f32;
            for v in host.iter_mut() {
                *v /= n;
            }
            bytes += host.len() * 4;
            let avg = Tensor::from_vec(host, &[elems], &dev)?; // one upload per bucket
            let mut off = 0;
            for p in bucket {
                p.set_grad(Some(avg.slice_flat(off, &p.shape())?));
                off += p.numel();
            }
            start = end;
        }
        Ok(bytes)
    }

    /// Broadcasts rank 0's buffers again (e.g. BatchNorm statistics before evaluation).
    pub fn broadcast_buffers(&self) -> Result<()> {
        let bufs: Vec<Buffer> = self.model.buffers();
        for b in bufs {
            if b.dtype() == kiln::DType::F32 {
                b.set(broadcast_tensor(self.dist, &b.tensor())?)?;
            }
        }
        Ok(())
    }
}

/// Which samples each rank reads (PyTorch's `DistributedSampler`): a shared seeded shuffle per
/// epoch, padded by repeating the first samples so that every rank gets the same count, then
/// every `size`-th index from `rank`.
#[derive(Debug, Clone)]
pub struct DistributedSampler {
    len: usize,
    rank: usize,
    size: usize,
    seed: Option<u64>,
}

impl DistributedSampler {
    /// For a dataset of `len` samples; `seed` shuffles (the same permutation on every rank).
    pub fn new(len: usize, dist: &Dist, seed: Option<u64>) -> DistributedSampler {
        DistributedSampler { len, rank: dist.rank(), size: dist.size().max(1), seed }
    }

    /// For an explicit rank and world size (tests, custom launchers).
    pub fn with_rank(len: usize, rank: usize, size: usize, seed: Option<u64>) -> Result<DistributedSampler> {
        if size == 0 || rank >= size {
            return Err(Error::invalid("DistributedSampler", format!("rank {rank} of {size}")));
        }
        Ok(DistributedSampler { len, rank, size, seed })
    }

    /// Samples per rank per epoch.
    pub fn per_rank(&self) -> usize {
        self.len.div_ceil(self.size)
    }

    /// This rank's indices for `epoch`.
    pub fn indices(&self, epoch: u64) -> Vec<usize> {
        let mut all = match self.seed {
            Some(s) => kiln::data::permutation(self.len, s ^ epoch.wrapping_mul(0xA24BAED4963EE407)),
            None => (0..self.len).collect(),
        };
        let total = self.per_rank() * self.size;
        let mut i = 0;
        while all.len() < total && self.len > 0 {
            all.push(all[i % self.len]);
            i += 1;
        }
        all.into_iter().skip(self.rank).step_by(self.size).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_shards_cover_everything_once_and_agree_on_the_shuffle() {
        for (len, size) in [(10, 2), (11, 3), (7, 4), (1, 2)] {
            let shards: Vec<Vec<usize>> =
                (0..size).map(|r| DistributedSampler::with_rank(len, r, size, Some(9)).unwrap().indices(3)).collect();
            let per = len.div_ceil(size);
            assert!(shards.iter().all(|s| s.len() == per));
            let mut all: Vec<usize> = shards.concat();
            all.sort();
            all.dedup();
            assert_eq!(all, (0..len).collect::<Vec<_>>(), "len {len} size {size}");
        }
        let a = DistributedSampler::with_rank(100, 0, 2, Some(1)).unwrap();
        assert_ne!(a.indices(0), a.indices(1), "a new permutation each epoch");
        assert!(DistributedSampler::with_rank(10, 2, 2, None).is_err());
    }

    #[test]
    fn a_world_of_one_without_mpi() {
        if cfg!(feature = "mpi") {
            return;
        }
        let d = init().unwrap();
        assert_eq!((d.rank(), d.size(), d.is_main()), (0, 1, true));
        let mut v = vec![1.0, 2.0];
        d.all_reduce_sum(&mut v).unwrap();
        assert_eq!(v, vec![1.0, 2.0]);
    }
}

#[cfg(test)]
mod ddp_tests {
    use super::*;
    use kiln::nn::{Linear, ReLU, Sequential};

    #[test]
    fn sync_in_a_world_of_one_keeps_gradients_skips_frozen_fills_missing() {
        if cfg!(feature = "mpi") {
            return; // under MPI this binary may run without a launcher; the MPI path is checked by ddp_check
        }
        let dev = Device::cpu();
        let m =
            Sequential::new().push(Linear::new(3, 4, &dev).unwrap()).push(ReLU).push(Linear::new(4, 2, &dev).unwrap());
        let d = init().unwrap();
        let ddp = DistributedDataParallel::new(&m, &d).unwrap().with_bucket_elems(5); // several buckets
        let ps = m.parameters();
        ps[0].set_requires_grad(false); // frozen: untouched
        ps[1].set_grad(Some(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4], &dev).unwrap()));
        // ps[2] and ps[3] have no gradient: they get zeros.
        let bytes = ddp.sync_gradients().unwrap();
        assert_eq!(bytes, (4 + 8 + 2) * 4);
        assert!(ps[0].grad().is_none());
        assert_eq!(ps[1].grad().unwrap().to_vec().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ps[2].grad().unwrap().to_vec().unwrap(), vec![0.0; 8]);
        assert_eq!(ps[3].grad().unwrap().shape(), &[2]);
    }
}
