//! Loaded models kept in memory, least recently used first out once their weights exceed a
//! byte budget. The model just loaded always stays, even alone over budget; runs holding an
//! evicted model keep it alive until they finish.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device};

use crate::CandleError;
use crate::pipeline::LoadedModel;

/// An LRU of loaded models bounded by weight bytes.
pub struct ModelCache {
    budget: u64,
    /// Oldest use first.
    entries: Mutex<Vec<(String, Arc<LoadedModel>)>>,
    /// Serialises loads so two jobs for one model read it once.
    loading: Mutex<()>,
}

impl ModelCache {
    /// A cache holding at most `budget` bytes of weights (plus the newest model).
    pub fn new(budget: u64) -> Self {
        Self { budget, entries: Mutex::new(Vec::new()), loading: Mutex::new(()) }
    }

    fn lookup(&self, name: &str) -> Option<Arc<LoadedModel>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let pos = entries.iter().position(|(n, _)| n == name)?;
        let entry = entries.remove(pos);
        let model = entry.1.clone();
        entries.push(entry);
        Some(model)
    }

    /// The model called `name`, loaded from `dir` if not cached.
    pub fn get_or_load(
        &self,
        name: &str,
        dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Arc<LoadedModel>, CandleError> {
        if let Some(model) = self.lookup(name) {
            return Ok(model);
        }
        let _loading = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(model) = self.lookup(name) {
            return Ok(model);
        }
        let model = Arc::new(LoadedModel::load(dir, device, dtype)?);
        tracing::info!(model = name, bytes = model.bytes, "candle model loaded");
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.push((name.to_owned(), model.clone()));
        while entries.len() > 1 && entries.iter().map(|(_, m)| m.bytes).sum::<u64>() > self.budget {
            let (evicted, _) = entries.remove(0);
            tracing::info!(model = evicted, "candle model evicted from the cache");
        }
        Ok(model)
    }

    /// Names of cached models, least recently used first.
    pub fn cached(&self) -> Vec<String> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(n, _)| n.clone()).collect()
    }
}
