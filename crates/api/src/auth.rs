//! Bearer-token authentication: JWTs signed with HS256 and a shared secret,
//! with a required `exp` and a `scope` claim of `read` or `admin` (admin
//! implies read). Handlers state the scope they need by taking
//! [`ReadAccess`] or [`AdminAccess`] as an argument.

use std::time::Duration;

use axiquota_core::Secret;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// The shortest accepted secret. HS256 keys shorter than the 32-byte hash
/// output weaken the signature.
pub const MIN_SECRET_BYTES: usize = 32;

/// Seconds of clock difference tolerated when checking `exp`.
const LEEWAY_SECONDS: u64 = 30;

/// Permission level granted by a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reports, listings and metrics.
    Read,
    /// Everything `read` allows, plus adding and deleting servers.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            other => Err(format!("invalid scope {other:?}: expected read or admin")),
        }
    }
}

/// The claims of an API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject the token was issued to, for the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `read` or `admin`; kept as text so that an unknown value gets its own
    /// message.
    pub scope: String,
    /// Expiry, seconds since the Unix epoch. Optional here only so that a
    /// token without it gets the "exp claim is required" message from the
    /// validation, which rejects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
}

/// A secret that is too short to sign tokens.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid API_JWT_SECRET: it is {length} bytes long, expected at least {MIN_SECRET_BYTES}; \
     generate one with `head -c 32 /dev/urandom | base64`"
)]
pub struct WeakSecretError {
    pub length: usize,
}

/// Authentication mode of the API.
#[derive(Clone)]
pub enum Auth {
    /// Every request that needs a scope must carry a valid token.
    Jwt {
        key: DecodingKey,
        validation: Box<Validation>,
    },
    /// No checks: every request has the admin scope. Chosen explicitly with
    /// `--no-auth`.
    Disabled,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jwt { .. } => f.write_str("Auth::Jwt([redacted])"),
            Self::Disabled => f.write_str("Auth::Disabled"),
        }
    }
}

fn check_secret(secret: &Secret) -> Result<(), WeakSecretError> {
    let length = secret.expose().len();
    if length < MIN_SECRET_BYTES {
        return Err(WeakSecretError { length });
    }
    Ok(())
}

impl Auth {
    /// Builds token checking from the shared secret.
    ///
    /// # Errors
    ///
    /// [`WeakSecretError`] when the secret is shorter than
    /// [`MIN_SECRET_BYTES`].
    pub fn jwt(secret: &Secret) -> Result<Self, WeakSecretError> {
        check_secret(secret)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self::Jwt {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation: Box::new(validation),
        })
    }

    /// Returns the scope that the request's bearer token grants.
    ///
    /// # Errors
    ///
    /// [`ApiError::Unauthorized`] for a missing, malformed, expired or
    /// badly signed token, or one with an unknown scope.
    pub fn authenticate(&self, parts: &Parts) -> Result<Scope, ApiError> {
        let (key, validation) = match self {
            Self::Disabled => return Ok(Scope::Admin),
            Self::Jwt { key, validation } => (key, validation),
        };
        let token = bearer_token(parts)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|error| {
            ApiError::Unauthorized(match error.kind() {
                ErrorKind::ExpiredSignature => {
                    "token expired: request a new token with `api token`".to_owned()
                }
                ErrorKind::InvalidSignature => {
                    "invalid token: the signature does not match API_JWT_SECRET".to_owned()
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("invalid token: the {claim:?} claim is required")
                }
                ErrorKind::InvalidAlgorithm => {
                    "invalid token: expected a token signed with HS256".to_owned()
                }
                _ => "invalid token: expected a JWT made by `api token`".to_owned(),
            })
        })?;
        let scope = data
            .claims
            .scope
            .parse::<Scope>()
            .map_err(|detail| ApiError::Unauthorized(format!("invalid token: {detail}")))?;
        tracing::debug!(subject = ?data.claims.sub, scope = scope.as_str(), "token accepted");
        Ok(scope)
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "missing bearer token: send the header Authorization: Bearer <token>".to_owned(),
        )
    };
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

/// Signs a token for `scope` that expires after `ttl`.
///
/// # Errors
///
/// [`WeakSecretError`] when the secret is too short.
pub fn issue_token(
    secret: &Secret,
    scope: Scope,
    ttl: Duration,
    subject: Option<&str>,
) -> Result<String, WeakSecretError> {
    check_secret(secret)?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: subject.map(str::to_owned),
        scope: scope.as_str().to_owned(),
        exp: Some(now.saturating_add(ttl.as_secs())),
        iat: now,
    };
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    // HMAC signing has no failure mode and these claims always serialize,
    // so an error here is a bug.
    Ok(
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .expect("HS256 encoding of plain claims"),
    )
}

/// Parses a lifetime such as `30d`, `12h`, `15m`, `90s` or `3600`
/// (seconds).
///
/// # Errors
///
/// A message naming the bad value and the accepted forms.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid ttl {text:?}: expected a positive number with s, m, h or d, like 30d");
    let text_trimmed = text.trim();
    let (digits, unit_seconds) = match text_trimmed.char_indices().last() {
        Some((index, 's')) => (&text_trimmed[..index], 1),
        Some((index, 'm')) => (&text_trimmed[..index], 60),
        Some((index, 'h')) => (&text_trimmed[..index], 3600),
        Some((index, 'd')) => (&text_trimmed[..index], 86_400),
        Some(_) => (text_trimmed, 1),
        None => return Err(invalid()),
    };
    let count: u64 = digits.parse().map_err(|_| invalid())?;
    let seconds = count.checked_mul(unit_seconds).ok_or_else(invalid)?;
    if seconds == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(seconds))
}

/// Proof that the request may read reports. The scope is `admin` when the
/// token grants it.
#[derive(Debug, Clone, Copy)]
pub struct ReadAccess(pub Scope);

/// Proof that the request may add, change and delete servers.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess;

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.auth.authenticate(parts)?))
    }
}

impl FromRequestParts<AppState> for AdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match state.auth.authenticate(parts)? {
            Scope::Admin => Ok(Self),
            Scope::Read => Err(ApiError::Forbidden(
                "forbidden: this endpoint needs a token with the admin scope".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units_parse() {
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_ttl("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("3600"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn ttl_rejects_bad_values() {
        for bad in ["", "d", "0d", "-1d", "1w", "1.5h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn short_secret_rejected() {
        let error = Auth::jwt(&Secret::new("short")).unwrap_err();
        assert_eq!(error.length, 5);
        assert!(error.to_string().contains("API_JWT_SECRET"));
        assert!(!error.to_string().contains("short\""));
    }
}
