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

/// A listing's row and, when it is cheap to read, the listing's total in the same statement
/// (`SELECT <columns>, <total column> …`): one round trip per page instead of two.
pub(crate) struct PageRow<R> {
    pub(crate) row: R,
    pub(crate) total: Option<i64>,
}

impl<'r, R, DbRow> sqlx::FromRow<'r, DbRow> for PageRow<R>
where
    DbRow: sqlx::Row,
    R: sqlx::FromRow<'r, DbRow>,
    Option<i64>: sqlx::Decode<'r, DbRow::Database> + sqlx::Type<DbRow::Database>,
    &'r str: sqlx::ColumnIndex<DbRow>,
{
    fn from_row(row: &'r DbRow) -> Result<Self, sqlx::Error> {
        Ok(Self { row: R::from_row(row)?, total: row.try_get("total")? })
    }
}

/// How a listing's total is found.
pub(crate) enum PageTotal {
    /// A lookup of one value (per-owner counters, a bound number): read in the page's statement
    /// (the subquery runs once).
    Lookup(String),
    /// Counting the matching rows (`SELECT COUNT(*) …`): its own statement after the page, so
    /// an expensive count never changes the page's plan (PostgreSQL plans one statement as a
    /// whole, and a full-text page sharing a statement with its count took 84 ms instead of 2).
    Count(String),
    /// Known already (the SQLite index's own count of a search).
    Known(i64),
}

impl PageTotal {
    /// The page's `total` column.
    pub(crate) fn column(&self) -> String {
        match self {
            Self::Lookup(sql) => format!("CAST(COALESCE(({sql}), 0) AS BIGINT) AS total"),
            Self::Count(_) => "CAST(NULL AS BIGINT) AS total".to_owned(),
            Self::Known(total) => format!("CAST({total} AS BIGINT) AS total"),
        }
    }

    /// The total when the page did not carry it (a count, or a page past the end): `Ok` when it
    /// is known, else the statement that reads it.
    pub(crate) fn without_page(&self) -> Result<i64, String> {
        match self {
            Self::Lookup(sql) => Err(format!("SELECT CAST(COALESCE(({sql}), 0) AS BIGINT)")),
            Self::Count(sql) => Err(sql.clone()),
            Self::Known(total) => Ok(*total),
        }
    }
}

impl PageTotal {
    /// The page's `LIMIT … OFFSET …`, `next` being the first free placeholder number.
    ///
    /// A plain listing (its total a lookup) writes both numbers into the statement: they are
    /// validated integers, so nothing can be injected, and with them in the text PostgreSQL
    /// reuses one generic plan instead of planning every execution (a `LIMIT $n` is costed as an
    /// unknown share of the table, so the generic plan never wins). pgbench on the jobs list:
    /// +39 % statements per second. A filtered or searched page keeps them as parameters: there
    /// a generic plan cannot see how selective the values are (a generic full-text plan read
    /// and sorted every match: 84 ms instead of 2), so every execution is planned for its own.
    pub(crate) fn limit_offset(&self, limit: i64, offset: i64, next: usize) -> String {
        match self {
            Self::Lookup(_) | Self::Known(_) => format!(" LIMIT {limit} OFFSET {offset}"),
            Self::Count(_) => format!(" LIMIT ${next} OFFSET ${}", next + 1),
        }
    }

    /// Whether the limit and offset are bound after the conditions' values.
    pub(crate) fn binds_limit(&self) -> bool {
        matches!(self, Self::Count(_))
    }
}

/// Runs a listing's page statement on `$pool` and returns `(rows, total)`: the conditions'
/// `$binds`, then the limit and offset when [`PageTotal::binds_limit`], and the total from the
/// page, or known, or read by its own statement when the page carried none.
macro_rules! fetch_page {
    ($pool:expr, $row:ty, $sql:expr, $binds:expr, $total:expr, $limit:expr, $offset:expr) => {{
        // The SQL text is assembled only from fixed fragments; every value is a bound parameter.
        let query = $crate::sql::bind_all!(sqlx::query_as(sqlx::AssertSqlSafe($sql)), $binds);
        let query = if $total.binds_limit() { query.bind($limit).bind($offset) } else { query };
        let page: Vec<$crate::sql::PageRow<$row>> = query.fetch_all($pool).await?;
        match $crate::sql::split_page(page) {
            (rows, Some(total)) => (rows, total),
            (rows, None) => match $total.without_page() {
                Ok(total) => (rows, total),
                Err(count) => {
                    let count = $crate::sql::bind_all!(sqlx::query_scalar(sqlx::AssertSqlSafe(count)), $binds);
                    (rows, count.fetch_one($pool).await?)
                }
            },
        }
    }};
}
pub(crate) use fetch_page;

/// Splits a page into its rows and its total, when the statement read it.
pub(crate) fn split_page<R>(rows: Vec<PageRow<R>>) -> (Vec<R>, Option<i64>) {
    let total = rows.first().and_then(|r| r.total);
    (rows.into_iter().map(|r| r.row).collect(), total)
}
