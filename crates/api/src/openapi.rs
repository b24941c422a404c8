//! The OpenAPI document. Paths come from the `#[utoipa::path]` attributes
//! of the handlers, registered together with their routes, so the document
//! lists exactly the routes that the router serves; this module adds the
//! title, the bearer security scheme and the Swagger UI page itself.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiSpec};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ServerRef};
use crate::middleware::DOCS_PATH;
use crate::views::{AccountView, DomainView, FullReport, ReportServerView};

/// Name of the security scheme that protected operations refer to.
pub const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "axiquota API",
        description = "Mailbox quota and usage of a fleet of Axigen Mail Servers, as of each \
                       server's last successful poll. Every endpoint except /health, /ready, \
                       /docs and /openapi.json needs a bearer token (JWT, HS256) from \
                       `api token`: scope `read` for reports, `admin` to add, change or delete servers. \
                       Sizes are in KB as Axigen reports them; MB fields are KB / 1024 rounded \
                       down. Every path also answers with a trailing slash."
    ),
    modifiers(&BearerScheme),
    components(schemas(ErrorBody, ServerRef, AccountView, DomainView, ReportServerView, FullReport)),
    tags(
        (name = "reports", description = "Reports and listings of the stored snapshots"),
        (name = "servers", description = "Registration of Axigen servers"),
        (name = "operations", description = "Health, readiness, metrics and this document")
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApiSpec) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// Adds the Swagger UI page to the document collected from the handlers.
pub fn finish(mut spec: OpenApiSpec) -> OpenApiSpec {
    let page = ResponseBuilder::new()
        .description("Swagger UI, served from the binary; `/docs` redirects to `/docs/`")
        .content("text/html", ContentBuilder::new().build())
        .build();
    let operation = OperationBuilder::new()
        .summary(Some("Interactive documentation (Swagger UI)"))
        .tag("operations")
        .response("200", page)
        .build();
    spec.paths.paths.insert(
        DOCS_PATH.to_owned(),
        PathItem::new(HttpMethod::Get, operation),
    );
    spec
}
