//! [`Metered`]: any store with `seidra_storage_*` metrics (operations by outcome, latency,
//! bytes moved). Labels are bounded: backend name, operation name, three outcomes.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::{ObjectInfo, ObjectStore, PresignOptions, SharedStore, StorageError, StoredObject};

/// Wraps a store and records metrics for every operation.
#[derive(Debug, Clone)]
pub struct Metered {
    inner: SharedStore,
}

impl Metered {
    /// Metrics around `inner`.
    pub fn new(inner: SharedStore) -> Self {
        Self { inner }
    }

    async fn observe<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let backend = self.inner.backend();
        let started = Instant::now();
        let result = fut.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StorageError::NotFound(_)) => "not_found",
            Err(_) => "error",
        };
        metrics::counter!("seidra_storage_operations_total", "backend" => backend, "op" => op, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("seidra_storage_operation_duration_seconds", "backend" => backend, "op" => op)
            .record(started.elapsed().as_secs_f64());
        result
    }

    fn bytes(&self, direction: &'static str, n: u64) {
        metrics::counter!("seidra_storage_bytes_total", "backend" => self.inner.backend(), "direction" => direction)
            .increment(n);
    }
}

impl ObjectStore for Metered {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<StoredObject, StorageError>> {
        Box::pin(async move {
            let stored = self.observe("put", self.inner.put(key, bytes, content_type)).await?;
            self.bytes("write", stored.bytes_len);
            Ok(stored)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Vec<u8>, StorageError>> {
        Box::pin(async move {
            let bytes = self.observe("get", self.inner.get(key)).await?;
            self.bytes("read", bytes.len() as u64);
            Ok(bytes)
        })
    }

    fn get_range<'a>(&'a self, key: &'a str, start: u64, end: u64) -> BoxFuture<'a, Result<Vec<u8>, StorageError>> {
        Box::pin(async move {
            let bytes = self.observe("get_range", self.inner.get_range(key, start, end)).await?;
            self.bytes("read", bytes.len() as u64);
            Ok(bytes)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(self.observe("delete", self.inner.delete(key)))
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(self.observe("exists", self.inner.exists(key)))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ObjectInfo>, StorageError>> {
        Box::pin(self.observe("list", self.inner.list(prefix, start_after, limit)))
    }

    fn health(&self) -> BoxFuture<'_, Result<Duration, StorageError>> {
        Box::pin(self.observe("health", self.inner.health()))
    }

    fn presigned_get(&self, key: &str, expires_at_unix: u64, options: &PresignOptions) -> Option<String> {
        self.inner.presigned_get(key, expires_at_unix, options)
    }

    fn download_origin(&self) -> Option<String> {
        self.inner.download_origin()
    }

    fn describe(&self) -> Vec<(&'static str, String)> {
        self.inner.describe()
    }
}
