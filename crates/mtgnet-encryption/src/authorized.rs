//! Which peer identities a party accepts.

use std::sync::Arc;

use crate::error::AuthorizedKeysError;
use crate::keys::PublicKey;
use crate::sodium;

/// The identities a party accepts in a handshake: anyone (the default; the
/// seed's `'(t)`), or only the keys in a list.
///
/// An empty list authorizes **nobody**: every handshake then fails with
/// [`HandshakeError::NotAuthorized`](crate::HandshakeError::NotAuthorized).
/// "Anyone" must be asked for explicitly with [`AuthorizedKeys::any`].
///
/// ```
/// use mtgnet_encryption::{AuthorizedKeys, IdentitySecret};
///
/// let alice = IdentitySecret::generate().public_key();
/// let bob = IdentitySecret::generate().public_key();
/// let only_alice = AuthorizedKeys::only([alice]);
/// assert!(only_alice.is_authorized(&alice));
/// assert!(!only_alice.is_authorized(&bob));
/// assert!(AuthorizedKeys::default().is_authorized(&bob));
/// assert!(!AuthorizedKeys::only([]).is_authorized(&bob));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizedKeys {
    /// `None` means any key is accepted. Shared, so that the copy every
    /// connection's handshake takes costs a reference count, not the list.
    keys: Option<Arc<[PublicKey]>>,
}

impl AuthorizedKeys {
    /// Accept any identity (authentication then only proves the peer holds
    /// the secret of the key it sent).
    pub fn any() -> Self {
        AuthorizedKeys { keys: None }
    }

    /// Accept only these identities; an empty list accepts nobody.
    pub fn only(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        AuthorizedKeys {
            keys: Some(keys.into_iter().collect()),
        }
    }

    /// Parses an authorized-keys file: one base64 public key per line,
    /// optionally followed by whitespace and a comment; blank lines and lines
    /// starting with `#` are ignored. A file without keys authorizes nobody.
    ///
    /// ```
    /// use mtgnet_encryption::AuthorizedKeys;
    ///
    /// let keys = AuthorizedKeys::parse(
    ///     "# our servers\n\
    ///      Mp6Kq/1xj2ftN8kkXsyuK9NH8n9T5iiTZS1iu0+5SHU= alice@laptop\n\
    ///      \n\
    ///      B69iGQJddZdrBPhtZJgLsqeoeU3waXX6SO8W9l/OSyY=\n",
    /// )?;
    /// assert_eq!(keys.keys().len(), 2);
    /// # Ok::<(), mtgnet_encryption::AuthorizedKeysError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`AuthorizedKeysError`] naming the first line (1-based) whose first
    /// word is not a public key.
    pub fn parse(text: &str) -> Result<Self, AuthorizedKeysError> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let word = line
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or(line);
            let key = word
                .parse::<PublicKey>()
                .map_err(|reason| AuthorizedKeysError {
                    line: index + 1,
                    reason,
                })?;
            keys.push(key);
        }
        Ok(AuthorizedKeys::only(keys))
    }

    /// Whether `key` may complete a handshake. Each listed key is compared
    /// in constant time, and the whole list is always scanned.
    pub fn is_authorized(&self, key: &PublicKey) -> bool {
        match &self.keys {
            None => true,
            Some(keys) => keys.iter().fold(false, |found, listed| {
                found | sodium::constant_time_eq(listed.as_bytes(), key.as_bytes())
            }),
        }
    }

    /// Whether any identity is accepted.
    pub fn is_any(&self) -> bool {
        self.keys.is_none()
    }

    /// The listed keys; empty for [`any`](Self::any) (check [`is_any`](Self::is_any)).
    pub fn keys(&self) -> &[PublicKey] {
        self.keys.as_deref().unwrap_or(&[])
    }
}
