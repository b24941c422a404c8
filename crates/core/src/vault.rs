//! The credential vault: Fernet encryption of stored server passwords.
//!
//! Fernet is a published token format (AES-128-CBC with HMAC-SHA256, a
//! version byte and a timestamp, URL-safe base64), so tokens written by
//! Python's `cryptography` package decrypt here unchanged and the other way
//! round. Several keys allow rotation: the first key encrypts, every key is
//! tried when decrypting.

use fernet::{Fernet, MultiFernet};
use std::fmt;

use crate::secret::Secret;

/// Errors from building a vault or decrypting a token. None of them carries
/// a key, a token or a plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error(
        "FERNET_KEY is empty: set it to a key made by `migrator generate-key` \
         (several keys may be given, comma-separated, the newest first)"
    )]
    NoKey,
    #[error(
        "invalid FERNET_KEY: key {position} of {count} is not 32 bytes of URL-safe base64 \
         (44 characters ending in '='); make one with `migrator generate-key`"
    )]
    InvalidKey { position: usize, count: usize },
    #[error(
        "cannot decrypt the stored password: it was encrypted with a key that is not in \
         FERNET_KEY, or it is damaged; add the old key to FERNET_KEY after the current one, \
         or store the password again"
    )]
    Decrypt,
    #[error("the decrypted password is not valid UTF-8")]
    NotUtf8,
}

/// Fernet keys loaded from `FERNET_KEY`. `Debug` never prints the keys.
#[derive(Clone)]
pub struct Vault {
    /// The keys in order: index 0 encrypts.
    keys: Vec<Fernet>,
    all: std::sync::Arc<MultiFernet>,
}

impl Vault {
    /// Builds a vault from one key or several comma-separated keys, newest
    /// first. White space around each key is ignored.
    ///
    /// # Errors
    ///
    /// [`VaultError::NoKey`] when no key is given, [`VaultError::InvalidKey`]
    /// naming the position of the first key that is not a Fernet key.
    pub fn from_keys(keys: &Secret) -> Result<Self, VaultError> {
        let parts: Vec<&str> = keys
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect();
        if parts.is_empty() {
            return Err(VaultError::NoKey);
        }

        let count = parts.len();
        let mut fernets = Vec::with_capacity(count);
        for (index, part) in parts.iter().enumerate() {
            let fernet = Fernet::new(part).ok_or(VaultError::InvalidKey {
                position: index + 1,
                count,
            })?;
            fernets.push(fernet);
        }

        let all = std::sync::Arc::new(MultiFernet::new(fernets.clone()));
        Ok(Self { keys: fernets, all })
    }

    /// Generates a new random key in the text form `FERNET_KEY` takes.
    pub fn generate_key() -> Secret {
        Secret::new(Fernet::generate_key())
    }

    /// Number of keys loaded.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Encrypts a password with the first key.
    pub fn encrypt(&self, plaintext: &Secret) -> String {
        self.keys[0].encrypt(plaintext.expose().as_bytes())
    }

    /// Decrypts a token with whichever key made it.
    ///
    /// # Errors
    ///
    /// [`VaultError::Decrypt`] when no key matches or the token was altered;
    /// [`VaultError::NotUtf8`] when the plaintext is not text.
    pub fn decrypt(&self, token: &str) -> Result<Secret, VaultError> {
        let bytes = self.all.decrypt(token).map_err(|_| VaultError::Decrypt)?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| VaultError::NotUtf8)
    }

    /// Tells whether a token decrypts with the first key, so a rotation can
    /// skip tokens that are already current.
    pub fn is_current(&self, token: &str) -> bool {
        self.keys[0].decrypt(token).is_ok()
    }

    /// Decrypts a token with any key and encrypts it again with the first.
    ///
    /// # Errors
    ///
    /// As [`Vault::decrypt`].
    pub fn reencrypt(&self, token: &str) -> Result<String, VaultError> {
        let plaintext = self.decrypt(token)?;
        Ok(self.encrypt(&plaintext))
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .finish()
    }
}
