//! `Sequential`: layers applied in order, named "0", "1", ... as `torch.nn.Sequential`.

use kiln_core::module::{Entry, VisitFn};
use kiln_core::{Module, Result, Tensor, TrainMode};

use crate::Forward;

/// A module that can sit in a [`Sequential`]: any `Module + Forward`.
pub trait Layer: Module + Forward {
    /// The layer as a module.
    fn as_module(&self) -> &dyn Module;
}

impl<T: Module + Forward> Layer for T {
    fn as_module(&self) -> &dyn Module {
        self
    }
}

/// Layers applied in order; children are named "0", "1", ...
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    mode: TrainMode,
}

impl Sequential {
    /// An empty sequence.
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends a layer (builder style).
    #[allow(clippy::should_implement_trait)]
    pub fn push(mut self, layer: impl Layer + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True without layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The i-th layer.
    pub fn get(&self, i: usize) -> Option<&dyn Layer> {
        self.layers.get(i).map(|l| l.as_ref())
    }

    /// The i-th layer as its concrete type (`model.get_as::<nn::Linear>(0)?.weight`, PyTorch's
    /// `model[0].weight`); `None` past the end or for a layer of another type.
    pub fn get_as<T: 'static>(&self, i: usize) -> Option<&T> {
        self.layers.get(i)?.as_module().as_any()?.downcast_ref::<T>()
    }
}

impl Module for Sequential {
    fn visit<'a>(&'a self, f: &mut VisitFn<'_, 'a>) {
        f("mode", Entry::Mode(&self.mode));
        for (i, l) in self.layers.iter().enumerate() {
            f(&i.to_string(), Entry::Module(l.as_module()));
        }
    }

    fn as_dyn(&self) -> &dyn Module {
        self
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl Forward for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            // A layer's error says where it sits: "Linear(..) at \"2\": ...".
            h = l.forward(&h).map_err(|e| e.in_child(&i.to_string()))?;
        }
        Ok(h)
    }
}
