//! The OpenAPI 3.1 document, generated from the handlers' annotations; every operation also
//! lists the error responses the API's shared extractors can produce.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

use spog_core::audit::Action;

use crate::error::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "spog", description = "SPOG audit, session-recording and notification hub"),
    servers((url = "/api/v1")),
    modifiers(&Conventions),
    security(("bearer" = []), ("session_cookie" = []))
)]
pub struct ApiDoc;

struct Conventions;

const PUBLIC: &[&str] = &["/auth/login"];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        // The catalogue of the service's own actions, which entries name as plain strings.
        components
            .schemas
            .insert(Action::name().into_owned(), Action::schema());
        for (name, schema) in error_schemas() {
            components.schemas.entry(name).or_insert(schema);
        }
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or spog_ API token")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_errors(operation, public);
            }
        }
    }
}

fn error_schemas() -> Vec<(String, RefOr<utoipa::openapi::schema::Schema>)> {
    let mut schemas = Vec::new();
    <ErrorBody as ToSchema>::schemas(&mut schemas);
    schemas
}

fn add_errors(operation: &mut Operation, public: bool) {
    let codes = [
        ("400", "Malformed request"),
        ("401", "Not authenticated, or the credential is invalid"),
        ("403", "Lacks the required permission"),
        ("404", "Not found, or belongs to another account"),
        ("409", "Conflicts with an existing object or state"),
        ("413", "Request body too large"),
        (
            "422",
            "Validation failed; `details.fields` names each field",
        ),
        ("429", "Rate limited"),
        ("500", "Internal error"),
        ("503", "Temporarily unavailable; retry"),
    ];
    for (code, description) in codes {
        operation
            .responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "ErrorBody",
                        )))),
                    )
                    .build()
                    .into()
            });
    }
    if public {
        operation.security = Some(Vec::new());
    }
}
