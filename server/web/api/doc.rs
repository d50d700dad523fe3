//! The OpenAPI 3.1 document of `/api/v1`, derived with `utoipa`: each handler carries its
//! `#[utoipa::path]` (method, path, parameters, body, every status it can answer) and each
//! request and response type derives `ToSchema`, so the document changes with the code it
//! describes. This module adds what belongs to the whole API: its title, the server prefix, the
//! two ways to authenticate, and the path-segment vocabularies of the control routes.
//!
//! To document a new route: annotate the handler with `#[utoipa::path(...)]` (copy a neighbour;
//! list every status it can answer, errors with `body = ErrorBody`), derive `utoipa::ToSchema`
//! on its body and answer types, and register it in [`super::routes`] with
//! `.routes(routes!(handler))` — never `.route(...)`, which the test
//! `every_api_route_is_in_the_document` refuses.

use serde::Serialize;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::{AnyOfBuilder, Ref, Schema};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as Document};
use utoipa::{OpenApi, ToSchema};

use crate::web::auth::extract::{CSRF_HEADER, SESSION_COOKIE};

/// The run controls `POST /runs/{id}/{action}` accepts (the page's buttons send the same words
/// to the same `apply_run_control`). Only described: the handler passes the word on as the
/// pages do, and an unknown one is refused there.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunAction {
    Submit,
    Approve,
    Pause,
    Resume,
    Abort,
    Undo,
    Extend,
    Override,
}

/// The step controls `POST /runs/{id}/steps/{step}/{action}` accepts (`apply_step_control`).
/// Only described, as [`RunAction`].
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    Approve,
    Deny,
    Claim,
    Complete,
    Retry,
    AskAgain,
    Skip,
    Resolve,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lockstep API",
        version = "1",
        description = "Everything the dashboard can do, for automation. Authenticate with \
            `Authorization: Bearer TOKEN` (create tokens on the dashboard's API tokens page or \
            POST /tokens), or with a browser session: its cookie, plus its CSRF token in the \
            `X-CSRF-Token` header on every POST. Roles (viewer < operator < approver < admin) \
            and four-eyes apply exactly as on the pages."
    ),
    servers((url = "/api/v1")),
    components(schemas(crate::web::error::ErrorBody, RunAction, StepAction))
)]
pub struct ApiDoc;

/// What the whole document needs once every route has added its operation.
pub fn finish(doc: &mut Document) {
    security(doc);
    upload_refusals(doc);
}

/// The security schemes, and on every operation that says nothing else the ways in: a bearer
/// token, or a session (whose POSTs also carry the CSRF header).
fn security(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
    );
    components.add_security_scheme(
        "csrf",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(CSRF_HEADER))),
    );
    let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
    let session = SecurityRequirement::new("session", Vec::<String>::new());
    let session_csrf = session.clone().add("csrf", Vec::<String>::new());
    for item in doc.paths.paths.values_mut() {
        for (method, op) in operations(item) {
            if op.security.is_some() {
                continue;
            }
            let by_session = if method == HttpMethod::Get {
                session.clone()
            } else {
                session_csrf.clone()
            };
            op.security = Some(vec![bearer.clone(), by_session]);
        }
    }
}

/// An inventory upload refused for what it says answers `UploadRefused` (every problem named);
/// a request refused before it is read answers the plain `ErrorBody`. Either may come with 422,
/// and an `UploadRefused` is also a valid `ErrorBody`, so the answer is `anyOf` (not `oneOf`,
/// which a body matching both would fail).
fn upload_refusals(doc: &mut Document) {
    let Some(item) = doc.paths.paths.get_mut("/datacenters") else {
        return;
    };
    let Some(op) = item.post.as_mut() else {
        return;
    };
    let Some(utoipa::openapi::RefOr::T(response)) = op.responses.responses.get_mut("422") else {
        return;
    };
    let either = AnyOfBuilder::new()
        .item(Ref::from_schema_name("UploadRefused"))
        .item(Ref::from_schema_name("ErrorBody"))
        .build();
    response.content.insert(
        "application/json".into(),
        utoipa::openapi::RefOr::T(
            ContentBuilder::new()
                .schema(Some(Schema::AnyOf(either)))
                .build(),
        ),
    );
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}
