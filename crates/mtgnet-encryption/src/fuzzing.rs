//! Entry points for fuzz targets; not part of the API.

use crate::{AuthorizedKeys, Handshake, IdentitySecret, PublicKey, Session};

/// Runs a fixed identity's [`Handshake::finish`] on arbitrary bytes.
pub fn handshake_finish(data: &[u8]) {
    let identity = IdentitySecret::from_seed(&[1; 32]);
    let handshake = Handshake::with_fixed_ephemeral(&identity, AuthorizedKeys::any(), &[2; 32]);
    if let Ok(session) = handshake.finish(data) {
        // Only a correctly signed payload gets here; the session must work.
        let sealed = session.seal(data);
        assert_eq!(session.open(&sealed).as_deref(), Ok(data));
    }
}

/// Opens arbitrary bytes as a sealed payload under a fixed key.
pub fn session_open(data: &[u8]) {
    let session = Session::with_key_bytes(&[3; 32], PublicKey::from_bytes(&[4; 32]));
    let opened = session.open(data);
    let mut buf = data.to_vec();
    let in_place = session
        .open_in_place(&mut buf)
        .map(|plaintext| plaintext.to_vec());
    assert_eq!(opened, in_place);
}

/// Runs the encryption v2 handshake readers on arbitrary bytes: a server
/// classifies them and reads them as the first frame (then the rest as
/// message 3), and a client reads them as message 2.
pub fn v2_handshake_reader(data: &[u8]) {
    use crate::v2::{FirstFrame, HELLO_SIZE, Initiator, NoiseIdentity, Responder};

    let identity = IdentitySecret::from_seed(&[1; 32]);
    let noise = NoiseIdentity::from_static_secret(&identity, &[2; 32]);
    let classified = crate::v2::classify_first_payload(data);
    let (hello, rest) = data.split_at(data.len().min(HELLO_SIZE));
    let responder = Responder::build(&noise, AuthorizedKeys::any(), hello, Some(&[3; 32]));
    if responder.is_ok() {
        assert_eq!(crate::v2::classify_first_payload(hello), FirstFrame::V2);
    }
    if classified == FirstFrame::V2 {
        assert!(data.starts_with(crate::v2::PROLOGUE) && data.len() == HELLO_SIZE);
    }
    if let Ok(responder) = responder {
        // Without the matching keys no message 3 can authenticate.
        assert!(responder.finish(rest).is_err());
    }
    let initiator = Initiator::build(&noise, AuthorizedKeys::any(), Some(&[4; 32]));
    assert!(initiator.finish(data).is_err());
}

/// Opens arbitrary bytes as a v2 record, then reads them as a script of
/// records — `flag, length, data` — sealed with the opener's key, so that
/// flags, chunk sizes and reassembly are exercised past the decryption.
pub fn v2_record_opener(data: &[u8]) {
    use crate::v2::{Opened, Opener, Sealer, record::TransportKey};

    const MAX_MESSAGE: usize = 600;
    let opener = |max| Opener::new(TransportKey::take(&mut [5; 32])).with_max_message(max);
    let mut raw = opener(MAX_MESSAGE);
    let _ = raw.open_in_place(&mut data.to_vec());

    let mut sealer = Sealer::new(TransportKey::take(&mut [5; 32]));
    let mut opener = opener(MAX_MESSAGE);
    let mut expected = Vec::new();
    let mut script = data;
    while let [flag, len, rest @ ..] = script {
        let (chunk, after) = rest.split_at(usize::from(*len).min(rest.len()));
        script = after;
        let plaintext = [std::slice::from_ref(flag), chunk].concat();
        let Some(mut record) = sealer.seal_raw(&plaintext) else {
            return;
        };
        match opener.open_in_place(&mut record) {
            Ok(Opened::Partial) => {
                assert_eq!(*flag, 0);
                expected.extend_from_slice(chunk);
            }
            Ok(Opened::InPlace(range)) => {
                assert_eq!(*flag, 1);
                assert!(range.len() <= MAX_MESSAGE);
                assert_eq!(&record[range], chunk);
                expected.clear();
            }
            Ok(Opened::Message(message)) => {
                assert_eq!(*flag, 1);
                expected.extend_from_slice(chunk);
                assert!(message.len() <= MAX_MESSAGE);
                assert_eq!(message, expected);
                expected.clear();
            }
            Ok(Opened::Closed) => {
                assert_eq!((*flag, chunk.len()), (2, 0));
                assert!(opener.finish_eof().is_ok());
            }
            Err(_) => {
                assert!(opener.finish_eof().is_err());
                return;
            }
        }
    }
}
