//! OpenAPI schemas for the domain's own scalar types.

use utoipa::openapi::schema::{Object, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::audit::Action;
use crate::events::EventType;
use crate::{Id, Permission, PermissionSet, Timestamp};

fn string(format: Option<KnownFormat>, description: &str) -> RefOr<Schema> {
    let mut object = Object::with_type(Type::String);
    object.format = format.map(SchemaFormat::KnownFormat);
    object.description = Some(description.to_owned());
    RefOr::T(Schema::Object(object))
}

// utoipa treats `Id<T>` as a generic container that composes its schema (and derives
// `PartialSchema` from that); the id's schema does not depend on `T`.
impl<T> utoipa::__dev::ComposeSchema for Id<T> {
    fn compose(_: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        string(Some(KnownFormat::Uuid), "UUID (v7, time-ordered)")
    }
}
impl<T> ToSchema for Id<T> {}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        string(
            Some(KnownFormat::DateTime),
            "RFC 3339 UTC with microseconds",
        )
    }
}
impl ToSchema for Timestamp {}

impl PartialSchema for Permission {
    fn schema() -> RefOr<Schema> {
        let mut object = Object::with_type(Type::String);
        object.enum_values = Some(Permission::ALL.iter().map(|p| p.as_str().into()).collect());
        RefOr::T(Schema::Object(object))
    }
}
impl ToSchema for Permission {}

impl PartialSchema for PermissionSet {
    fn schema() -> RefOr<Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(Permission::schema())
            .into()
    }
}
impl ToSchema for PermissionSet {}

impl PartialSchema for EventType {
    fn schema() -> RefOr<Schema> {
        let mut object = Object::with_type(Type::String);
        object.enum_values = Some(EventType::ALL.iter().map(|t| t.as_str().into()).collect());
        RefOr::T(Schema::Object(object))
    }
}
impl ToSchema for EventType {}

impl PartialSchema for Action {
    fn schema() -> RefOr<Schema> {
        let mut object = Object::with_type(Type::String);
        let rows: String = Action::ALL
            .iter()
            .map(|a| format!("\n- `{a}` ({}): {}", a.resource_type(), a.description()))
            .collect();
        object.description = Some(format!(
            "An action the service records of its own changes, with the `resource_type` of its \
             entries. Their namespaces (and `{}`) are reserved: `POST /audit-logs` refuses \
             them.\n{rows}",
            crate::audit::RESERVED_NAMESPACES.join("`, `")
        ));
        object.enum_values = Some(Action::ALL.iter().map(|a| a.as_str().into()).collect());
        RefOr::T(Schema::Object(object))
    }
}
impl ToSchema for Action {
    fn name() -> std::borrow::Cow<'static, str> {
        "AuditAction".into()
    }
}
