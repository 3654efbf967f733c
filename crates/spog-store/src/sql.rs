//! A builder for queries assembled at run time (filters, `IN` lists, multi-row inserts). Its
//! placeholders suit the connection it runs on: `$1, $2, …` on PostgreSQL, `?` on SQLite,
//! where numbered names cost a linear search per parameter (quadratic for a bulk insert).

use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow};
use sqlx::postgres::PgRow;
use sqlx::{
    Any, Arguments, AssertSqlSafe, Database, Encode, FromRow, PgConnection, Postgres, Type,
};

use crate::{Conn, StoreResult};

/// Stands for a parameter in the text until the connection's style is known; it never
/// occurs in SQL this crate writes.
const PLACEHOLDER: char = '\u{1}';

/// Built for the Any driver every store function uses; `Sql<Postgres>` for the few reads that
/// go through PostgreSQL's own driver (see [`crate::Store::bulk_conn`]).
pub struct Sql<DB: Database = Any> {
    text: String,
    args: DB::Arguments,
    /// Whether the connection keeps the prepared statement (and, on PostgreSQL, may settle on
    /// a generic plan for it).
    persistent: bool,
}

impl<DB: Database> Sql<DB> {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: DB::Arguments::default(),
            persistent: true,
        }
    }

    /// Plans the query with its parameter values on every run instead of caching it. For
    /// searches whose best plan depends on the values: after five runs PostgreSQL may keep a
    /// generic plan that cannot see a `LIKE` pattern's prefix or how rare a value is, and
    /// then scans a whole table for a page of fifty.
    pub fn planned_per_run(&mut self) -> &mut Self {
        self.persistent = false;
        self
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'static, DB> + Type<DB>,
    {
        self.args.add(value).expect("binding a plain value");
        self.text.push(PLACEHOLDER);
        self
    }

    /// Appends `(?, ?, …)`; an empty list becomes `(NULL)`, which matches nothing.
    pub fn bind_list<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: Encode<'static, DB> + Type<DB>,
    {
        self.text.push('(');
        let mut empty = true;
        for value in values {
            if !empty {
                self.text.push_str(", ");
            }
            empty = false;
            self.bind(value);
        }
        if empty {
            self.text.push_str("NULL");
        }
        self.text.push(')');
        self
    }

    /// The text with placeholders numbered (`$1, $2, …`) or not (`?`).
    fn text(&self, numbered: bool) -> String {
        let mut text = String::with_capacity(self.text.len() + self.args.len() * 4);
        let mut n = 0;
        for c in self.text.chars() {
            if c != PLACEHOLDER {
                text.push(c);
            } else if numbered {
                n += 1;
                text.push('$');
                text.push_str(&n.to_string());
            } else {
                text.push('?');
            }
        }
        text
    }
}

/// What conditions are written into: [`Sql`] on sqlx's drivers, or the text and values of
/// a query on another driver (the SQLite reads of walks). Only what filters bind.
pub(crate) trait QueryText {
    fn push_text(&mut self, text: &str);
    fn bind_text(&mut self, value: String);
    fn bind_int(&mut self, value: i64);
}

impl<DB: Database> QueryText for Sql<DB>
where
    String: Encode<'static, DB> + Type<DB>,
    i64: Encode<'static, DB> + Type<DB>,
{
    fn push_text(&mut self, text: &str) {
        self.push(text);
    }

    fn bind_text(&mut self, value: String) {
        self.bind(value);
    }

    fn bind_int(&mut self, value: i64) {
        self.bind(value);
    }
}

impl Sql<Any> {
    /// Binds a double that may be missing. A missing one is written as `NULL`, not bound:
    /// sqlx's Any driver binds a missing double as a float4, and PostgreSQL would then type the
    /// parameter of that connection's cached statement float4 for every later value.
    pub fn bind_double(&mut self, value: Option<f64>) -> &mut Self {
        match value {
            Some(value) => self.bind(value),
            None => self.push("NULL"),
        }
    }

    /// The text with placeholders in `conn`'s style.
    fn finish(self, conn: &Conn) -> (String, AnyArguments, bool) {
        let text = self.text(conn.backend_name() != "SQLite");
        (text, self.args, self.persistent)
    }

    pub async fn execute(self, conn: &mut Conn) -> StoreResult<AnyQueryResult> {
        let (text, args, persistent) = self.finish(conn);
        Ok(sqlx::query_with(AssertSqlSafe(text), args)
            .persistent(persistent)
            .execute(conn)
            .await?)
    }

    pub async fn fetch_all<O>(self, conn: &mut Conn) -> StoreResult<Vec<O>>
    where
        O: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let (text, args, persistent) = self.finish(conn);
        Ok(sqlx::query_as_with(AssertSqlSafe(text), args)
            .persistent(persistent)
            .fetch_all(conn)
            .await?)
    }

    pub async fn fetch_one<O>(self, conn: &mut Conn) -> StoreResult<O>
    where
        O: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let (text, args, persistent) = self.finish(conn);
        Ok(sqlx::query_as_with(AssertSqlSafe(text), args)
            .persistent(persistent)
            .fetch_one(conn)
            .await?)
    }

    pub async fn fetch_optional<O>(self, conn: &mut Conn) -> StoreResult<Option<O>>
    where
        O: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let (text, args, persistent) = self.finish(conn);
        Ok(sqlx::query_as_with(AssertSqlSafe(text), args)
            .persistent(persistent)
            .fetch_optional(conn)
            .await?)
    }

    /// One row of one column.
    pub async fn fetch_scalar<O>(self, conn: &mut Conn) -> StoreResult<O>
    where
        (O,): for<'r> FromRow<'r, AnyRow>,
        O: Send + Unpin,
    {
        let (text, args, persistent) = self.finish(conn);
        Ok(sqlx::query_scalar_with(AssertSqlSafe(text), args)
            .persistent(persistent)
            .fetch_one(conn)
            .await?)
    }
}

/// A PostgreSQL array literal of `values`, for a `$n::type[]` parameter where the Any driver
/// binds no arrays. Every element is quoted, so any text survives; numbers parse quoted too.
pub fn pg_array(values: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut literal = String::from("{");
    for (i, value) in values.into_iter().enumerate() {
        literal.push_str(if i == 0 { "\"" } else { ",\"" });
        for c in value.as_ref().chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

impl Sql<Postgres> {
    pub async fn fetch_rows_pg(self, conn: &mut PgConnection) -> StoreResult<Vec<PgRow>> {
        let text = self.text(true);
        Ok(sqlx::query_with(AssertSqlSafe(text), self.args)
            .persistent(self.persistent)
            .fetch_all(conn)
            .await?)
    }
}

/// A read-only transaction for a text search. On PostgreSQL, sequential scans are ruled out in
/// it: its estimate of how many rows `LIKE '%…%'` keeps is no guide either way (without
/// statistics it scans the whole table for rare text; with them, for common text), while every
/// read of a search has an index that serves it. So are parallel plans, which the same
/// estimates choose for a few dozen rows and which cost more to start than those rows to read.
pub(crate) async fn indexed_reads(conn: &mut Conn) -> StoreResult<sqlx::Transaction<'_, Any>> {
    let postgres = conn.backend_name() != "SQLite";
    let mut tx = sqlx::Connection::begin(conn).await?;
    if postgres {
        sqlx::raw_sql(
            "SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0",
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(tx)
}

/// `query` as a quoted FTS5 string: its trigrams in a row, that is the text as a substring.
pub(crate) fn fts_phrase(query: &str) -> String {
    format!("\"{}\"", query.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::pg_array;

    #[test]
    fn an_array_literal_quotes_every_element_and_escapes_quotes_and_backslashes() {
        assert_eq!(pg_array(Vec::<String>::new()), "{}");
        assert_eq!(
            pg_array(["1", "a,b", r#"say "hi"\"#, "NULL"]),
            r#"{"1","a,b","say \"hi\"\\","NULL"}"#
        );
    }
}
