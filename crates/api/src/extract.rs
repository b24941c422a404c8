//! Request extractors whose failures become [`ApiError`]s with the field at
//! fault: a JSON body with a size limit, and query parameters that are
//! parsed one by one so that each bad value gets its own message.

use std::str::FromStr;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest JSON request body accepted, in bytes. The largest valid body
/// (`add_server` with every text at its maximum) is under 4 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON request body, deserialized with the path of the failing field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        check_content_type(&request)?;

        // A declared length over the limit is rejected before reading.
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }

        // Chunked bodies have no declared length, so the limit is also
        // checked while reading.
        let mut body = Vec::new();
        let mut stream = request.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| {
                ApiError::bad_request(None, format!("cannot read the request body: {error}"))
            })?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }

        parse_json(&body).map(Self)
    }
}

fn check_content_type(request: &Request) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType("(none)".to_owned()));
    };
    let text = value.to_str().unwrap_or("(not text)");
    let essence = text.split(';').next().unwrap_or("").trim();
    let is_json = essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5 && essence.to_ascii_lowercase().ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(text.to_owned()))
    }
}

/// Deserializes a JSON body and turns serde's error into a message that
/// names the field.
///
/// # Errors
///
/// [`ApiError::BadRequest`] for malformed JSON, a missing or unknown field
/// or a value of the wrong type.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            None,
            "malformed JSON body: it is empty; expected a JSON object",
        ));
    }
    let starts_object = body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{');
    if !starts_object && serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        return Err(ApiError::bad_request(
            None,
            "invalid request body: expected a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = result.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if !inner.is_data() {
            return ApiError::BadRequest {
                message: format!("malformed JSON body: {inner}"),
                field: None,
            };
        }
        // serde reports missing and unknown fields at their parent, with the
        // field name quoted in backticks.
        let text = plain_type_names(&inner.to_string());
        // The position in the body adds nothing to the field name.
        let text = match text.rsplit_once(" at line ") {
            Some((message, _)) => message.to_owned(),
            None => text,
        };
        let (field, message) = if path == "." {
            let field = text.split('`').nth(1).map(str::to_owned);
            let message = if text.starts_with("missing field") {
                format!("invalid request body: {text}, which is required; the fields are listed at /docs")
            } else {
                format!("invalid request body: {text}")
            };
            (field, message)
        } else if text.starts_with("unknown field") {
            // The message already names the field, so a prefix such as
            // "invalid extra:" would repeat it.
            (Some(path), text)
        } else {
            let message = format!("invalid {path}: {text}");
            (Some(path), message)
        };
        ApiError::BadRequest { message, field }
    })?;
    // Trailing content after the object, such as a second object.
    deserializer.end().map_err(|error| ApiError::BadRequest {
        message: format!("malformed JSON body: {error}"),
        field: None,
    })?;
    Ok(value)
}

/// Replaces Rust type names in serde's messages ("expected i64") with JSON
/// terms that a client understands.
fn plain_type_names(text: &str) -> String {
    let mut plain = text.to_owned();
    for rust_type in ["i64", "i32", "i16", "u64", "u32", "u16", "u8"] {
        plain = plain.replace(&format!("expected {rust_type}"), "expected an integer");
    }
    plain.replace("expected f64", "expected a number")
}

/// The raw query parameters of a request, in order.
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::bad_request(None, format!("malformed query string: {rejection}"))
            })?;
        Ok(Self { pairs })
    }
}

impl QueryParams {
    /// Rejects parameters not in `known`, and parameters given twice.
    ///
    /// # Errors
    ///
    /// [`ApiError::BadRequest`] naming the parameter.
    pub fn check_known(&self, known: &[&'static str]) -> Result<(), ApiError> {
        for (index, (name, _)) in self.pairs.iter().enumerate() {
            let Some(field) = known.iter().find(|known| *known == name) else {
                let expected = if known.is_empty() {
                    "this endpoint takes none".to_owned()
                } else {
                    format!("expected one of {}", known.join(", "))
                };
                return Err(ApiError::BadRequest {
                    message: format!("unknown query parameter {name:?}: {expected}"),
                    field: Some(name.clone()),
                });
            };
            if self.pairs[..index]
                .iter()
                .any(|(earlier, _)| earlier == name)
            {
                return Err(ApiError::bad_request(
                    *field,
                    format!("query parameter {name} is given more than once"),
                ));
            }
        }
        Ok(())
    }

    /// Returns a text parameter; an empty value is an error, because it
    /// most often comes from an unset variable in a script.
    ///
    /// # Errors
    ///
    /// [`ApiError::BadRequest`] when the value is empty or longer than
    /// `max_len` bytes.
    pub fn text(&self, name: &'static str, max_len: usize) -> Result<Option<&str>, ApiError> {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        if value.is_empty() {
            return Err(ApiError::bad_request(
                name,
                format!("invalid {name}: it is empty; leave the parameter out to not filter"),
            ));
        }
        if value.len() > max_len {
            return Err(ApiError::bad_request(
                name,
                format!(
                    "invalid {name}: it is {} bytes long, expected at most {max_len}",
                    value.len()
                ),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                name,
                format!("invalid {name}: control characters are not allowed"),
            ));
        }
        Ok(Some(value))
    }

    /// Parses a parameter with [`FromStr`]; `expected` describes the
    /// accepted values for the message.
    ///
    /// # Errors
    ///
    /// [`ApiError::BadRequest`] naming the parameter and quoting the value.
    pub fn parse<T: FromStr>(
        &self,
        name: &'static str,
        expected: &str,
    ) -> Result<Option<T>, ApiError> {
        let Some(value) = self.raw(name) else {
            return Ok(None);
        };
        value.parse::<T>().map(Some).map_err(|_| {
            ApiError::bad_request(
                name,
                format!("invalid {name} {value:?}: expected {expected}"),
            )
        })
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// Picks the format from `?format=json|csv`, or else from an `Accept`
    /// header that lists `text/csv`.
    ///
    /// # Errors
    ///
    /// [`ApiError::BadRequest`] for another `format` value.
    pub fn negotiate(params: &QueryParams, parts_accept: Option<&str>) -> Result<Self, ApiError> {
        match params.raw("format") {
            Some("json") => return Ok(Self::Json),
            Some("csv") => return Ok(Self::Csv),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "format",
                    format!("invalid format {other:?}: expected json or csv"),
                ));
            }
            None => {}
        }
        let wants_csv = parts_accept.is_some_and(|accept| {
            accept
                .split(',')
                .any(|item| item.split(';').next().unwrap_or("").trim() == "text/csv")
        });
        Ok(if wants_csv { Self::Csv } else { Self::Json })
    }
}

/// The `Accept` header as text, for [`Format::negotiate`].
#[derive(Debug, Default)]
pub struct AcceptHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for AcceptHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(ACCEPT)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        port: Option<i64>,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_json::<Sample>(body.as_bytes()).unwrap_err() {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field_of(r#"{"port": 1}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "a", "extra": 1}"#).as_deref(),
            Some("extra")
        );
        assert_eq!(
            field_of(r#"{"name": "a", "port": "x"}"#).as_deref(),
            Some("port")
        );
        assert_eq!(field_of(r#"{"name": 5}"#).as_deref(), Some("name"));
        assert_eq!(
            plain_type_names(r#"invalid type: string "7000", expected i64"#),
            r#"invalid type: string "7000", expected an integer"#
        );
        assert_eq!(field_of(r#"{"name": "a""#), None);
        assert_eq!(field_of(""), None);
        assert_eq!(field_of(r#"{"name": "a"} {"name": "b"}"#), None);
    }
}
