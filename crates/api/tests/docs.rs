//! Swagger UI and the OpenAPI document: served from the binary, public,
//! and listing exactly the routes that the router serves.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use sqlx::PgPool;

/// Every path the application serves, besides Swagger UI's own assets.
const ROUTES: [&str; 13] = [
    "/accounts",
    "/add_server",
    "/delete_server",
    "/docs",
    "/domains",
    "/health",
    "/metrics",
    "/openapi.json",
    "/ready",
    "/report",
    "/servers",
    "/summary",
    "/update_server",
];

#[sqlx::test(migrations = "../../migrations")]
async fn swagger_ui_served_offline(pool: PgPool) {
    let app = common::spawn(pool).await;
    // `/docs` redirects to `/docs/`, which reqwest follows.
    let page = app.send(app.client.get(app.url("/docs"))).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("swagger-ui"), "{}", page.text);

    let initializer = app
        .send(app.client.get(app.url("/docs/swagger-initializer.js")))
        .await;
    assert_eq!(initializer.status, 200);
    assert!(initializer.text.contains("/openapi.json"));

    let bundle = app
        .send(app.client.get(app.url("/docs/swagger-ui-bundle.js")))
        .await;
    assert_eq!(bundle.status, 200);
    assert!(
        bundle.text.len() > 100_000,
        "the UI is bundled in the binary"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn openapi_lists_every_route(pool: PgPool) {
    let app = common::spawn(pool).await;
    let reply = app.send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(reply.status, 200);
    let spec = reply.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));

    let paths = spec["paths"].as_object().unwrap();
    let listed: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(listed, ROUTES.into_iter().collect::<BTreeSet<_>>());

    // Every documented operation is served, so none responds 404 or 405.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(path))
                .bearer_auth(&app.admin_token)
                .header("content-type", "application/json")
                .body("{}");
            let reply = app.send(request).await;
            assert!(
                reply.status != 404 || path == "/delete_server",
                "{method} {path} is documented but not served: {}",
                reply.text
            );
            assert_ne!(reply.status, 405, "{method} {path}");
        }
    }
    let unknown = app.get("/not-a-route").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["success"], false);
}

#[sqlx::test(migrations = "../../migrations")]
async fn openapi_documents_security_params_errors(pool: PgPool) {
    let app = common::spawn(pool).await;
    let spec = app
        .send(app.client.get(app.url("/openapi.json")))
        .await
        .json();
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "ErrorBody",
        "AccountView",
        "DomainView",
        "FullReport",
        "AddServerRequest",
    ] {
        assert!(
            spec["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }

    let accounts = &spec["paths"]["/accounts"]["get"];
    let names: BTreeSet<&str> = accounts["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|parameter| parameter["name"].as_str().unwrap())
        .collect();
    for name in [
        "server",
        "domain",
        "address",
        "q",
        "min_percent",
        "unlimited",
        "sort",
        "order",
        "limit",
        "offset",
        "format",
    ] {
        assert!(names.contains(name), "/accounts lacks parameter {name}");
    }
    assert_eq!(accounts["security"][0]["bearer"], Value::Array(vec![]));

    for path in ["/health", "/ready", "/openapi.json"] {
        let security = &spec["paths"][path]["get"]["security"];
        assert_eq!(security[0], serde_json::json!({}), "{path} is public");
    }
    let add = &spec["paths"]["/add_server"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "409", "413", "415"] {
        assert!(add.get(status).is_some(), "/add_server lacks {status}");
    }
}
