//! `f32` request fields written as the decimal the client sent: JSON numbers are doubles, and
//! widening an `f32` as is shows its binary error (0.4 came back as 0.4000000059604645 in the
//! stored request, the job view and every output's parameters).

use serde::Serializer;

fn widen(v: f32) -> f64 {
    // The shortest decimal that reads back as `v`, read as a double.
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// Serializes an `f32` as its shortest decimal.
pub(crate) fn f32<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(widen(*v))
}

/// [`f32`] for an optional field.
pub(crate) fn opt_f32<S: Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&widen(*v)),
        None => s.serialize_none(),
    }
}
