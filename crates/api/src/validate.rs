//! Checks on user input that the types alone do not express. Each check
//! returns a message in the form "invalid FIELD VALUE: what is expected".

use std::net::IpAddr;

use crate::error::ApiError;

/// Maximum host name length that DNS allows, in bytes.
pub const MAX_HOSTNAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Maximum length of a server label or user name, in characters, and of a
/// password, in bytes.
pub const MAX_TEXT_LEN: usize = 255;
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Maximum number of certificate fingerprints per server, as the schema allows.
pub const MAX_FINGERPRINTS: usize = 8;

/// Checks that `value` is a host name (RFC 1123 labels) or an IP address,
/// with no scheme, port, path, spaces or control characters.
///
/// # Errors
///
/// [`ApiError::BadRequest`] naming `field`.
pub fn hostname(field: &'static str, value: &str) -> Result<(), ApiError> {
    let fail =
        |detail: &str| ApiError::bad_request(field, format!("invalid {field} {value:?}: {detail}"));
    if value.is_empty() {
        return Err(ApiError::bad_request(
            field,
            format!("invalid {field}: it is empty; expected a host name such as mx1.example.com"),
        ));
    }
    if value.len() > MAX_HOSTNAME_LEN {
        return Err(ApiError::bad_request(
            field,
            format!(
                "invalid {field}: it is {} bytes long, expected at most {MAX_HOSTNAME_LEN}",
                value.len()
            ),
        ));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(fail("spaces and control characters are not allowed"));
    }
    if value.contains("://") {
        return Err(fail(
            "expected a bare host name without a scheme such as https://",
        ));
    }
    if value.contains('/') {
        return Err(fail("expected a bare host name without a path"));
    }
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if value.contains(':') || value.contains('[') {
        return Err(fail(
            "expected a host name or an IP address without a port; give ports in cli_port and webadmin_port",
        ));
    }

    let labels: Vec<&str> = value.split('.').collect();
    if labels
        .iter()
        .all(|label| label.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(fail("not a valid IPv4 address"));
    }
    for label in labels {
        if label.is_empty() {
            return Err(fail(
                "empty label: two dots in a row, or a dot at either end",
            ));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(fail("a label between dots is longer than 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(fail("expected only letters, digits, hyphens and dots"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(fail("a label must not start or end with a hyphen"));
        }
    }
    Ok(())
}

/// Checks a TCP port given as a JSON integer.
///
/// # Errors
///
/// [`ApiError::BadRequest`] naming `field` when outside 1-65535.
pub fn port(field: &'static str, value: i64) -> Result<u16, ApiError> {
    match u16::try_from(value) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(ApiError::bad_request(
            field,
            format!("invalid {field} {value}: expected 1-65535"),
        )),
    }
}

/// Checks a free-text value such as a server label or a user name: not
/// blank, at most `max` characters, and without control characters.
///
/// # Errors
///
/// [`ApiError::BadRequest`] naming `field`.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(
            field,
            format!("invalid {field}: it is empty"),
        ));
    }
    let length = value.chars().count();
    if length > max {
        return Err(ApiError::bad_request(
            field,
            format!("invalid {field}: it is {length} characters long, expected at most {max}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            field,
            format!("invalid {field}: control characters such as line breaks are not allowed"),
        ));
    }
    Ok(())
}

/// Checks a password without ever putting it in a message. Line breaks are
/// rejected because the Axigen CLI is a line protocol: a password with a
/// newline would end the login command early.
///
/// # Errors
///
/// [`ApiError::BadRequest`] naming `password`.
pub fn password(value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_request(
            "password",
            "invalid password: it is empty",
        ));
    }
    if value.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::bad_request(
            "password",
            format!("invalid password: expected at most {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "password",
            "invalid password: control characters such as line breaks are not allowed",
        ));
    }
    Ok(())
}

/// Checks TLS certificate fingerprints and returns them as lower-case hex,
/// 64 digits each, without repeats. Each may be written in any case, with
/// colons or spaces between the bytes, with or without the `sha256
/// Fingerprint=` prefix that `openssl x509 -noout -fingerprint -sha256`
/// prints.
///
/// # Errors
///
/// [`ApiError::BadRequest`] naming `tls_fingerprints`.
pub fn fingerprints(values: &[String]) -> Result<Vec<String>, ApiError> {
    const FIELD: &str = "tls_fingerprints";
    if values.len() > MAX_FINGERPRINTS {
        return Err(ApiError::bad_request(
            FIELD,
            format!(
                "invalid tls_fingerprints: {} given, expected at most {MAX_FINGERPRINTS}",
                values.len()
            ),
        ));
    }
    let mut normalized: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let digits = value
            .rsplit_once('=')
            .map_or(value.as_str(), |(_, digits)| digits)
            .chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if digits.len() != 64 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            let excerpt: String = value.chars().take(100).collect();
            return Err(ApiError::bad_request(
                FIELD,
                format!(
                    "invalid tls_fingerprints entry {excerpt:?}: expected a SHA-256 fingerprint of \
                     64 hex digits, with or without colons or spaces, as `openssl x509 -noout \
                     -fingerprint -sha256` prints it"
                ),
            ));
        }
        if !normalized.contains(&digits) {
            normalized.push(digits);
        }
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_accepts_names_and_ips() {
        for good in [
            "mx1.example.com",
            "MX1.Example.COM",
            "localhost",
            "a-b.c",
            "127.0.0.1",
            "::1",
            "2001:db8::25",
            "1.example",
        ] {
            assert!(hostname("hostname", good).is_ok(), "{good:?} was rejected");
        }
    }

    #[test]
    fn hostname_rejects_bad_forms() {
        let long_label = format!("{}.com", "a".repeat(64));
        let too_long = ["a"; 130].join(".");
        for bad in [
            "",
            " mx1.example.com",
            "mx1 .example.com",
            "mx1.example.com\n",
            "https://mx1.example.com",
            "mx1.example.com/path",
            "mx1.example.com:7000",
            "[::1]",
            "mx1..example.com",
            ".mx1.example.com",
            "mx1.example.com.",
            "-mx1.example.com",
            "mx1_x.example.com",
            "999.1.1.1",
            "1.2.3",
            "mx1.ex\u{e4}mple.com",
            long_label.as_str(),
            too_long.as_str(),
        ] {
            assert!(hostname("hostname", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn port_range() {
        assert_eq!(port("cli_port", 1).unwrap(), 1);
        assert_eq!(port("cli_port", 65535).unwrap(), 65535);
        for bad in [0, -1, 65536, i64::MAX] {
            assert!(port("cli_port", bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn password_message_hides_value() {
        let error = password("sec\nret").unwrap_err();
        assert!(!error.to_string().contains("sec"));
    }
}
