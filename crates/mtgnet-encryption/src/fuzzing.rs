//! Entry points for fuzz targets; not part of the API.

use crate::{AuthorizedKeys, Handshake, IdentitySecret, PublicKey, Session};

/// Runs a fixed identity's [`Handshake::finish`] on arbitrary bytes.
pub fn handshake_finish(data: &[u8]) {
    let identity = IdentitySecret::from_seed(&[1; 32]);
    let handshake = Handshake::with_ephemeral_secret(&identity, AuthorizedKeys::any(), &[2; 32]);
    if let Ok(session) = handshake.finish(data) {
        // Only a correctly signed payload gets here; the session must work.
        let sealed = session.seal(data);
        assert_eq!(session.open(&sealed).as_deref(), Ok(data));
    }
}

/// Opens arbitrary bytes as a sealed payload under a fixed key.
pub fn session_open(data: &[u8]) {
    let session = Session::from_key_bytes(&[3; 32], PublicKey::from_bytes(&[4; 32]));
    let opened = session.open(data);
    let mut buf = data.to_vec();
    let in_place = session
        .open_in_place(&mut buf)
        .map(|plaintext| plaintext.to_vec());
    assert_eq!(opened, in_place);
}
