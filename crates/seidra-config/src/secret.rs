//! A string that never prints itself.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value (password, key): `Debug` and `Serialize` print `********`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("********")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Numbers in env vars (an all-digit password) arrive as integers through figment.
        let value = serde_json::Value::deserialize(deserializer)?;
        match value {
            serde_json::Value::String(s) => Ok(Secret(s)),
            serde_json::Value::Number(n) => Ok(Secret(n.to_string())),
            serde_json::Value::Bool(b) => Ok(Secret(b.to_string())),
            other => Err(serde::de::Error::custom(format!("expected a string, found {other}"))),
        }
    }
}
