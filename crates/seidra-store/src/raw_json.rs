//! JSON columns kept as the text the database returned.
//!
//! A job's request and a media item's parameters are stored, listed and answered as they are;
//! only a worker reads inside them. Building a `serde_json::Value` tree for each of the 50 rows
//! of a list page and serialising it again was a third of the server's CPU on
//! `GET /api/jobs` (perf, session 8): this type skips both, and a reader that needs the fields
//! parses straight into its own request type with [`RawJson::parse`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON value held as text (validated when read; serialised verbatim).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parses it into `T` (a typed request, or a `Value` to edit).
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.0.get())
    }

    /// The text of a `Value`.
    pub fn from_value(value: &Value) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(Self)
    }
}

/// Equal when the JSON values are equal, whatever the spacing or key order (PostgreSQL's
/// `jsonb` and SQLite's text spell the same value differently).
impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || matches!((self.parse::<Value>(), other.parse::<Value>()), (Ok(a), Ok(b)) if a == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_verbatim_and_parses_on_demand() {
        let raw: RawJson = serde_json::from_str(r#"{"b": 2, "a": [1, "x"]}"#).unwrap();
        assert_eq!(json!({ "request": raw }), json!({"request": {"a": [1, "x"], "b": 2}}));
        let direct = serde_json::to_string(&vec![&raw]).unwrap();
        assert_eq!(direct, r#"[{"b": 2, "a": [1, "x"]}]"#, "written as read, no re-encoding");

        #[derive(Deserialize)]
        struct Req {
            b: i64,
        }
        assert_eq!(raw.parse::<Req>().unwrap().b, 2);
        assert_eq!(raw.parse::<Value>().unwrap(), json!({"a": [1, "x"], "b": 2}));
    }

    #[test]
    fn equality_is_by_value() {
        let spaced: RawJson = serde_json::from_str(r#"{"a": 1, "b": [true]}"#).unwrap();
        let compact = RawJson::from_value(&json!({"b": [true], "a": 1})).unwrap();
        assert_eq!(spaced, compact);
        assert_ne!(spaced, RawJson::from_value(&json!({"a": 2, "b": [true]})).unwrap());
    }

    #[test]
    fn invalid_json_is_refused() {
        assert!(serde_json::from_str::<RawJson>(r#"{"a": "#).is_err());
    }
}
