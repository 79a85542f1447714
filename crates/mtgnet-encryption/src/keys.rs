//! Identity keys (Ed25519) and their base64 text form.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{InvalidSignature, KeyError};
use crate::sodium::{self, SecretBytes};
use crate::{PUBLICKEY_SIZE, SECRET_SIZE};

/// Length of a base64-encoded secret: 64 bytes in 88 characters.
const ENCODED_SECRET_LEN: usize = 88;

/// A party's static identity: an Ed25519 secret key in libsodium's 64-byte
/// form (seed followed by public key), held in protected memory.
///
/// It cannot be cloned, prints as `IdentitySecret([REDACTED])`, and is wiped
/// when dropped. Its text form is 88 characters of standard base64.
///
/// ```
/// use mtgnet_encryption::IdentitySecret;
///
/// let secret = IdentitySecret::generate();
/// let encoded = secret.to_base64();
/// let decoded: IdentitySecret = encoded.expose_secret().parse()?;
/// assert_eq!(decoded.public_key(), secret.public_key());
/// assert_eq!(format!("{secret:?}"), "IdentitySecret([REDACTED])");
/// # Ok::<(), mtgnet_encryption::KeyError>(())
/// ```
pub struct IdentitySecret {
    secret: SecretBytes<SECRET_SIZE>,
    /// Kept outside the protected region: it is public, and reading it
    /// (once per handshake) must not unprotect the secret.
    public: PublicKey,
}

impl IdentitySecret {
    /// A fresh random identity (`crypto_sign_keypair`).
    pub fn generate() -> IdentitySecret {
        let mut public = [0u8; PUBLICKEY_SIZE];
        let secret = SecretBytes::new_with(|sk| sodium::sign_keypair(&mut public, sk));
        IdentitySecret {
            secret,
            public: PublicKey(public),
        }
    }

    /// The identity derived from a 32-byte seed (`crypto_sign_seed_keypair`).
    ///
    /// ```
    /// use mtgnet_encryption::IdentitySecret;
    ///
    /// let a = IdentitySecret::from_seed(&[1; 32]);
    /// let b = IdentitySecret::from_seed(&[1; 32]);
    /// assert_eq!(a.public_key(), b.public_key());
    /// ```
    pub fn from_seed(seed: &[u8; 32]) -> IdentitySecret {
        let mut public = [0u8; PUBLICKEY_SIZE];
        let secret = SecretBytes::new_with(|sk| sodium::sign_seed_keypair(seed, &mut public, sk));
        IdentitySecret {
            secret,
            public: PublicKey(public),
        }
    }

    /// Decodes the 64-byte libsodium form (seed || public key).
    ///
    /// # Errors
    ///
    /// [`KeyError::WrongLength`] unless `secret` is 64 bytes;
    /// [`KeyError::PublicHalfMismatch`] if its last 32 bytes are not the
    /// public key of its first 32.
    pub fn from_bytes(secret: &[u8]) -> Result<IdentitySecret, KeyError> {
        if secret.len() != SECRET_SIZE {
            return Err(KeyError::WrongLength {
                expected: SECRET_SIZE,
                len: secret.len(),
            });
        }
        let (seed, claimed_public) = secret.split_at(32);
        let seed: &[u8; 32] = seed.try_into().expect("split_at(32) yields 32 bytes");
        let derived = IdentitySecret::from_seed(seed);
        // Keep the derived secret rather than the input: they are the same
        // bytes once the public halves match.
        if sodium::constant_time_eq(derived.public_key().as_bytes(), claimed_public) {
            Ok(derived)
        } else {
            Err(KeyError::PublicHalfMismatch)
        }
    }

    /// Decodes the 88-character base64 text form, ignoring surrounding ASCII
    /// whitespace (such as the newline at the end of a key file).
    ///
    /// The decoded bytes only ever live in protected memory.
    ///
    /// # Errors
    ///
    /// [`KeyError::Base64`] for text that is not standard padded base64,
    /// [`KeyError::NonCanonicalBase64`] for non-zero unused bits,
    /// [`KeyError::WrongLength`] if it does not decode to 64 bytes and
    /// [`KeyError::PublicHalfMismatch`] as for [`from_bytes`](Self::from_bytes).
    pub fn from_base64(s: &str) -> Result<IdentitySecret, KeyError> {
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.len() != ENCODED_SECRET_LEN {
            // Not a secret we can use; decode anyway only to report why.
            let mut decoded = STANDARD.decode(s).map_err(key_error)?;
            let len = decoded.len();
            sodium::wipe(&mut decoded);
            return Err(KeyError::WrongLength {
                expected: SECRET_SIZE,
                len,
            });
        }
        // 88 padded characters decode to at most 66 bytes.
        let mut len = 0;
        let scratch = SecretBytes::<66>::try_new_with(|buf| {
            len = STANDARD.decode_slice(s, buf).map_err(|e| match e {
                base64::DecodeSliceError::DecodeError(e) => key_error(e),
                base64::DecodeSliceError::OutputSliceTooSmall => KeyError::Base64,
            })?;
            Ok(())
        })?;
        if len != SECRET_SIZE {
            return Err(KeyError::WrongLength {
                expected: SECRET_SIZE,
                len,
            });
        }
        scratch.expose_secret(|bytes| IdentitySecret::from_bytes(&bytes[..SECRET_SIZE]))
    }

    /// Reads the encoded secret (88 base64 characters, surrounding ASCII
    /// whitespace allowed) from `reader` straight into protected memory, so
    /// the secret's text never sits in an ordinary heap buffer. Use it for
    /// secret files and standard input.
    ///
    /// ```
    /// use mtgnet_encryption::IdentitySecret;
    ///
    /// let secret = IdentitySecret::generate();
    /// let file = format!("{}\n", secret.to_base64().expose_secret());
    /// let read = IdentitySecret::read_from(file.as_bytes())?;
    /// assert_eq!(read.public_key(), secret.public_key());
    /// # Ok::<(), mtgnet_encryption::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when reading fails,
    /// [`Error::Key`](crate::Error::Key) when the text is not a valid secret
    /// (more than 1 KiB of input is reported as a wrong length).
    pub fn read_from(mut reader: impl std::io::Read) -> Result<IdentitySecret, crate::Error> {
        const LIMIT: usize = 1024;
        let mut read_error = None;
        let mut len = 0;
        let text = SecretBytes::<LIMIT>::new_with(|buf| {
            while len < LIMIT {
                match reader.read(&mut buf[len..]) {
                    Ok(0) => break,
                    Ok(n) => len += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        read_error = Some(e);
                        break;
                    }
                }
            }
        });
        if let Some(e) = read_error {
            return Err(crate::Error::Io(e));
        }
        if len == LIMIT {
            return Err(KeyError::WrongLength {
                expected: SECRET_SIZE,
                len: LIMIT,
            }
            .into());
        }
        text.expose_secret(|bytes| match std::str::from_utf8(&bytes[..len]) {
            Ok(text) => IdentitySecret::from_base64(text).map_err(crate::Error::Key),
            Err(_) => Err(KeyError::Base64.into()),
        })
    }

    /// The 88-character base64 text form, in a string that is wiped on drop.
    pub fn to_base64(&self) -> EncodedSecret {
        let mut text = String::with_capacity(ENCODED_SECRET_LEN);
        // Exact capacity: the string never reallocates, which would leave a
        // copy of the secret in freed memory.
        self.secret
            .expose_secret(|bytes| STANDARD.encode_string(bytes, &mut text));
        EncodedSecret(text)
    }

    /// The public half: the identity others authorize.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs `message` in libsodium's combined mode (`crypto_sign`): the
    /// 64-byte signature followed by the message.
    ///
    /// ```
    /// use mtgnet_encryption::IdentitySecret;
    ///
    /// let secret = IdentitySecret::generate();
    /// let signed = secret.sign(b"hello");
    /// assert_eq!(signed.len(), 64 + 5);
    /// assert_eq!(secret.public_key().open_signed(&signed).unwrap(), b"hello");
    /// ```
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.secret.expose_secret(|sk| sodium::sign(message, sk))
    }

    /// Runs `f` with the raw 64-byte secret. Don't copy it out of the closure.
    pub fn expose_secret<R>(&self, f: impl FnOnce(&[u8; SECRET_SIZE]) -> R) -> R {
        self.secret.expose_secret(f)
    }

    /// The address of the secret's region, for tests that check reading it
    /// outside `expose_secret` faults.
    #[doc(hidden)]
    pub fn as_ptr(&self) -> *const u8 {
        self.secret.as_ptr()
    }
}

impl FromStr for IdentitySecret {
    type Err = KeyError;

    /// Same as [`IdentitySecret::from_base64`].
    fn from_str(s: &str) -> Result<Self, KeyError> {
        IdentitySecret::from_base64(s)
    }
}

impl fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentitySecret([REDACTED])")
    }
}

fn key_error(e: base64::DecodeError) -> KeyError {
    match e {
        base64::DecodeError::InvalidLastSymbol(..) => KeyError::NonCanonicalBase64,
        _ => KeyError::Base64,
    }
}

/// The base64 text of an [`IdentitySecret`], wiped when dropped.
///
/// It prints as `EncodedSecret([REDACTED])`; read it with
/// [`expose_secret`](Self::expose_secret), e.g. to write a key file.
///
/// ```
/// use mtgnet_encryption::IdentitySecret;
///
/// let encoded = IdentitySecret::from_seed(&[0; 32]).to_base64();
/// assert_eq!(encoded.expose_secret().len(), 88);
/// assert_eq!(format!("{encoded:?}"), "EncodedSecret([REDACTED])");
/// ```
pub struct EncodedSecret(String);

impl EncodedSecret {
    /// The 88 base64 characters.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl Drop for EncodedSecret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        sodium::wipe(&mut bytes);
    }
}

impl fmt::Debug for EncodedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncodedSecret([REDACTED])")
    }
}

/// An Ed25519 public key: a party's identity on the wire and in
/// authorized-keys files.
///
/// Equality is constant-time (`sodium_memcmp`). `Display` and `FromStr` use
/// 44 characters of canonical standard base64; `Debug` is `PublicKey(base64)`.
///
/// ```
/// use mtgnet_encryption::PublicKey;
///
/// let key: PublicKey = "Mp6Kq/1xj2ftN8kkXsyuK9NH8n9T5iiTZS1iu0+5SHU=".parse()?;
/// assert_eq!(key.to_string(), "Mp6Kq/1xj2ftN8kkXsyuK9NH8n9T5iiTZS1iu0+5SHU=");
/// assert_eq!(key.as_bytes()[0], 0x32);
/// assert_eq!(PublicKey::from_bytes(key.as_bytes()), key);
/// # Ok::<(), mtgnet_encryption::KeyError>(())
/// ```
#[derive(Clone, Copy)]
pub struct PublicKey([u8; PUBLICKEY_SIZE]);

impl PublicKey {
    /// Wraps 32 raw bytes. Any bytes are accepted; a key that is not a valid
    /// curve point simply never verifies a signature.
    pub fn from_bytes(bytes: &[u8; PUBLICKEY_SIZE]) -> PublicKey {
        PublicKey(*bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLICKEY_SIZE] {
        &self.0
    }

    /// The 44-character base64 form (same as `Display`).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Verifies a combined-mode signature made by this key and returns the
    /// signed message (`crypto_sign_open`; the seed's extract-signed-bytes).
    ///
    /// # Errors
    ///
    /// [`InvalidSignature`] if `signed` is shorter than a signature or the
    /// signature does not verify under libsodium's strict rules.
    pub fn open_signed(&self, signed: &[u8]) -> Result<Vec<u8>, InvalidSignature> {
        sodium::sign_open(signed, &self.0).ok_or(InvalidSignature)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        sodium::constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for PublicKey {}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    /// Parses 44 characters of canonical standard base64, ignoring
    /// surrounding ASCII whitespace.
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
        let decoded = STANDARD.decode(s).map_err(key_error)?;
        let bytes: [u8; PUBLICKEY_SIZE] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::WrongLength {
                    expected: PUBLICKEY_SIZE,
                    len: decoded.len(),
                })?;
        Ok(PublicKey(bytes))
    }
}
