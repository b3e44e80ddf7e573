//! Assembling a `WHERE` clause from optional filters: the SQL text is built only from fixed
//! fragments, every value is a bound parameter, and each filter that is absent is left out of
//! the text entirely (so `owner_id = $1` stays an indexable predicate, unlike
//! `($1 IS NULL OR owner_id = $1)`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A value bound to a dynamically assembled query.
pub(crate) enum Bind {
    Uuid(Uuid),
    Text(String),
    Bool(bool),
    Time(DateTime<Utc>),
}

/// `AND`-ed conditions with their bound values, numbered `$1…$n` in order.
#[derive(Default)]
pub(crate) struct Conditions {
    parts: Vec<String>,
    pub(crate) binds: Vec<Bind>,
}

impl Conditions {
    /// Adds a condition; `cond` receives the placeholder number of `value`.
    pub(crate) fn push(&mut self, cond: &dyn Fn(usize) -> String, value: Bind) {
        self.binds.push(value);
        self.parts.push(cond(self.binds.len()));
    }

    /// ` WHERE a AND b`, or nothing when there is no condition.
    pub(crate) fn where_clause(&self) -> String {
        if self.parts.is_empty() { String::new() } else { format!(" WHERE {}", self.parts.join(" AND ")) }
    }

    /// The placeholder number after the last bound value.
    pub(crate) fn next_placeholder(&self) -> usize {
        self.binds.len() + 1
    }
}

/// Binds every value of a [`Conditions`] to a query, in order.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                $crate::sql::Bind::Uuid(v) => q.bind(*v),
                $crate::sql::Bind::Text(v) => q.bind(v.as_str()),
                $crate::sql::Bind::Bool(v) => q.bind(*v),
                $crate::sql::Bind::Time(v) => q.bind(*v),
            };
        }
        q
    }};
}
pub(crate) use bind_all;
