//! A small builder for queries assembled at run time (filters, `IN` lists), numbering
//! placeholders `$1, $2, …`, which both backends accept.

use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Any, Arguments, AssertSqlSafe, Encode, FromRow, Type};

#[derive(Default)]
pub struct Sql {
    text: String,
    args: AnyArguments,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: AnyArguments::default(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'static, Any> + Type<Any>,
    {
        self.args.add(value).expect("binding a plain value");
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// Appends `($n, $n+1, …)`; an empty list becomes `(NULL)`, which matches nothing.
    pub fn bind_list<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: Encode<'static, Any> + Type<Any>,
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

    pub fn query(self) -> Query<'static, Any, AnyArguments> {
        sqlx::query_with(AssertSqlSafe(self.text), self.args)
    }

    pub fn query_as<O>(self) -> QueryAs<'static, Any, O, AnyArguments>
    where
        O: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_as_with(AssertSqlSafe(self.text), self.args)
    }

    pub fn query_scalar<O>(self) -> QueryScalar<'static, Any, O, AnyArguments>
    where
        (O,): for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        sqlx::query_scalar_with(AssertSqlSafe(self.text), self.args)
    }
}
