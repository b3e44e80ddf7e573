//! [`TestS3`]: a fresh bucket per test on the S3 server named by `SEIDRA_TEST_S3_ENDPOINT`
//! (SeaweedFS in CI: `.ci/run` and `scripts/test.sh` start one). Like PostgreSQL, it is not
//! optional: without the variables the test fails and says how to provide a server.

use std::time::Duration;

use anyhow::Context;
use seidra_storage::{ObjectStore, S3Config, S3Store};

/// A bucket that exists for one test.
pub struct TestS3 {
    /// How to reach the bucket (for settings of a test server).
    pub config: S3Config,
    /// A store on it.
    pub store: S3Store,
}

/// The test S3 server's endpoint, access key and secret key from the environment.
pub fn s3_env() -> anyhow::Result<(String, String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (var("SEIDRA_TEST_S3_ENDPOINT"), var("SEIDRA_TEST_S3_ACCESS_KEY"), var("SEIDRA_TEST_S3_SECRET_KEY")) {
        (Some(endpoint), Some(access), Some(secret)) => Ok((endpoint, access, secret)),
        _ => anyhow::bail!(
            "this test needs an S3 server: set SEIDRA_TEST_S3_ENDPOINT, SEIDRA_TEST_S3_ACCESS_KEY and \
             SEIDRA_TEST_S3_SECRET_KEY (scripts/test.sh starts SeaweedFS when `weed` is on PATH; see README, Testing)"
        ),
    }
}

impl TestS3 {
    /// Creates a bucket with a unique name.
    pub async fn new() -> anyhow::Result<Self> {
        let (endpoint, access_key_id, secret_access_key) = s3_env()?;
        let bucket = format!("seidra-test-{}", &crate::unique_suffix()[..16]);
        let config = S3Config {
            endpoint,
            public_endpoint: None,
            region: std::env::var("SEIDRA_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".to_owned()),
            bucket,
            path_style: true,
            access_key_id,
            secret_access_key,
            session_token: None,
            timeout: Duration::from_secs(10),
        };
        let store = S3Store::new(config.clone())?;
        store.create_bucket().await.with_context(|| format!("cannot create test bucket {}", config.bucket))?;
        Ok(Self { config, store })
    }

    /// Empties and deletes the bucket.
    pub async fn cleanup(self) -> anyhow::Result<()> {
        for object in seidra_storage::list_all(&self.store, "").await? {
            self.store.delete(&object.key).await?;
        }
        self.store.delete_bucket().await?;
        Ok(())
    }
}
