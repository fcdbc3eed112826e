//! The OpenAPI 3.1 document (`GET /api/v1/openapi.json`): the documented routes ARE the
//! router (`routes()`, built with utoipa-axum from the handlers' `#[utoipa::path]`
//! attributes, one `routes!` per path), so a route cannot be served undocumented or
//! documented unserved. The status page's HTML routes are left out: they are for browsers.
//! Open without a token: it describes the API and reveals nothing about this service.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{api, metrics, probes, problem, recordings, schema, stream, AppState};

/// The security scheme of `[[http.tokens]]`.
pub(super) const TOKEN: &str = "token";
/// The security scheme of `[http] metrics_token`.
pub(super) const METRICS_TOKEN: &str = "metrics_token";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "recbot HTTP API",
        version = env!("CARGO_PKG_VERSION"),
        description = "The same operations as recbot's chat commands, with the same rights and \
            audit log, the live event stream, the probes and the metrics. Requests carry \
            `Authorization: Bearer <token>` with a token from `[[http.tokens]]`: viewer tokens \
            read, operator tokens may also change things (each operation says when it needs an \
            operator; a viewer then gets 403). Errors are RFC 9457 problem details \
            (`application/problem+json`) with the words chat shows; any operation through the \
            core may also answer 500 (`urn:recbot:problem:failed`).",
        license(name = "MIT"),
    ),
    components(schemas(schema::Problem)),
    modifiers(&Schemes),
    tags(
        (name = "logins", description = "The watch list"),
        (name = "recordings", description = "Recorded sessions and their files"),
        (name = "uploads", description = "YouTube uploads and quota"),
        (name = "service", description = "Status and disk"),
        (name = "auth", description = "Connecting YouTube and Twitch accounts (operators)"),
        (name = "events", description = "The live event stream"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

/// The bearer schemes.
struct Schemes;

impl Modify for Schemes {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            TOKEN,
            bearer("A `[[http.tokens]]` token: `viewer` reads, `operator` may change things."),
        );
        components.add_security_scheme(
            METRICS_TOKEN,
            bearer("`[http] metrics_token`, needed by `/metrics` only when it is set."),
        );
    }
}

/// Every documented route, each registered with its documentation.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::default()
        .routes(routes!(api::list, api::add))
        .routes(routes!(api::login_status, api::remove))
        .routes(routes!(api::uploads))
        .routes(routes!(api::retry))
        .routes(routes!(api::quota))
        .routes(routes!(api::disk))
        .routes(routes!(api::status))
        .routes(routes!(api::auth))
        .routes(routes!(api::code))
        .routes(routes!(recordings::list))
        .routes(routes!(recordings::one))
        .routes(routes!(stream::sse))
        .routes(routes!(stream::ws))
        .routes(routes!(document_json))
        .fallback(problem::not_found);
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(probes::healthz))
        .routes(routes!(probes::readyz))
        .routes(routes!(metrics::metrics))
        .nest("/api/v1", api)
}

/// The finished document: the routes' documentation with the answers every authenticated
/// operation shares.
pub fn document() -> OpenApi {
    let mut doc = routes().into_openapi();
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let secured = operation
                .security
                .iter()
                .flatten()
                .any(|s| serde_json::to_value(s).is_ok_and(|v| v.get(TOKEN).is_some()));
            if secured {
                shared_problems(operation);
            }
        }
    }
    doc
}

/// 401 without a valid token; 503 once the core no longer takes requests.
fn shared_problems(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    responses.entry("401".into()).or_insert_with(|| {
        problem_response(
            "No token, or not one of recbot's tokens (`urn:recbot:problem:unauthorized`)",
        )
    });
    responses.entry("503".into()).or_insert_with(|| {
        problem_response("recbot is shutting down (`urn:recbot:problem:shutting-down`)")
    });
}

fn problem_response(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The document as served, made once.
static JSON: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_pretty_json()
        .expect("the OpenAPI document is JSON")
});

/// `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This document",
    description = "The OpenAPI 3.1 document of this API. No token needed: it describes the \
        API and reveals nothing about this service's state.",
    responses((status = 200, description = "The OpenAPI document", body = serde_json::Value)),
)]
pub(super) async fn document_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document names its version and every authenticated operation shares the 401 and
    /// 503 problems (added after the routes were collected).
    #[test]
    fn the_document_is_openapi_3_1_with_the_shared_problems() {
        let doc: serde_json::Value = serde_json::from_str(&JSON).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let list = &doc["paths"]["/api/v1/logins"]["get"];
        assert_eq!(list["security"], serde_json::json!([{ TOKEN: [] }]));
        for status in ["401", "503"] {
            assert_eq!(
                list["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem"
            );
        }
        let health = &doc["paths"]["/healthz"]["get"];
        assert!(health["responses"].get("401").is_none(), "{health}");
    }
}
