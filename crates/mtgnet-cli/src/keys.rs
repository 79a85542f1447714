//! `mtgnet keygen` and `mtgnet pubkey`, and loading identities and
//! authorized keys for `serve` and `call`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use mtgnet::{AuthorizedKeys, IdentitySecret};

use crate::args::{KeygenArgs, PubkeyArgs};

/// The environment variable holding a base64 identity secret (for containers).
pub(crate) const SECRET_ENV: &str = "MTGNET_SECRET";

/// Where an identity came from: decides whether to warn that it is throwaway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdentitySource {
    /// Read from this file.
    File(PathBuf),
    /// Read from [`SECRET_ENV`].
    Environment,
    /// Generated for this run only.
    Throwaway,
}

/// Loads the identity from `file`, else from [`SECRET_ENV`], else generates a throwaway one.
///
/// # Errors
///
/// The file cannot be read, or the secret in it (or in the variable) is invalid.
pub(crate) fn load_identity(
    file: Option<&Path>,
) -> anyhow::Result<(Arc<IdentitySecret>, IdentitySource)> {
    if let Some(path) = file {
        let secret = read_secret_file(path)?;
        return Ok((Arc::new(secret), IdentitySource::File(path.to_owned())));
    }
    match std::env::var(SECRET_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            let secret =
                decode_secret(text).with_context(|| format!("invalid secret in ${SECRET_ENV}"))?;
            Ok((Arc::new(secret), IdentitySource::Environment))
        }
        _ => Ok((
            Arc::new(IdentitySecret::generate()),
            IdentitySource::Throwaway,
        )),
    }
}

/// Reads an identity secret from a file holding its base64 form.
///
/// # Errors
///
/// The file cannot be read or does not hold a valid secret.
pub(crate) fn read_secret_file(path: &Path) -> anyhow::Result<IdentitySecret> {
    let file = fs::File::open(path)
        .with_context(|| format!("cannot read secret file {}", path.display()))?;
    IdentitySecret::read_from(file).with_context(|| format!("invalid secret in {}", path.display()))
}

/// Decodes base64 secret text, wiping the text afterwards.
fn decode_secret(text: String) -> Result<IdentitySecret, mtgnet::encryption::KeyError> {
    let secret = IdentitySecret::from_base64(&text);
    let mut bytes = text.into_bytes();
    bytes.fill(0);
    std::hint::black_box(&bytes);
    secret
}

/// Reads an authorized-keys file.
///
/// # Errors
///
/// The file cannot be read, or a line's first word is not a public key.
pub(crate) fn read_authorized_keys(path: &Path) -> anyhow::Result<AuthorizedKeys> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read authorized keys file {}", path.display()))?;
    AuthorizedKeys::parse(&text)
        .with_context(|| format!("invalid authorized keys file {}", path.display()))
}

/// Runs `mtgnet keygen`.
///
/// # Errors
///
/// The output file exists (without `--force`) or cannot be written.
pub(crate) fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let secret = IdentitySecret::generate();
    let encoded = secret.to_base64();
    let mut stdout = io::stdout().lock();
    match &args.out {
        None => {
            writeln!(stdout, "{}", encoded.expose_secret())?;
        }
        Some(path) => {
            write_secret_file(path, encoded.expose_secret(), args.force)?;
        }
    }
    writeln!(stdout, "{}", secret.public_key())?;
    stdout.flush()?;
    Ok(())
}

/// Writes `secret` and a newline to `path`, readable by its owner only.
fn write_secret_file(path: &Path, secret: &str, force: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; use --force to overwrite it",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })?;
    // `mode` applies only to a new file: tighten an overwritten one too,
    // before the secret is in it.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    let mut line = String::with_capacity(secret.len() + 1);
    line.push_str(secret);
    line.push('\n');
    let written = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_all());
    let mut bytes = line.into_bytes();
    bytes.fill(0);
    std::hint::black_box(&bytes);
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `mtgnet pubkey`.
///
/// # Errors
///
/// The secret cannot be read or is invalid.
pub(crate) fn pubkey(args: &PubkeyArgs) -> anyhow::Result<()> {
    let secret = match &args.secret_file {
        Some(path) => read_secret_file(path)?,
        None => IdentitySecret::read_from(io::stdin().lock()).context("invalid secret on stdin")?,
    };
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", secret.public_key())?;
    stdout.flush()?;
    Ok(())
}
