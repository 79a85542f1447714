//! Secrets stay out of Debug output, live in locked memory that faults when
//! written, and (identity and ephemeral secrets) when read outside
//! `expose_secret`, and are wiped; authorized-keys files.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mtgnet_encryption::{
    AuthorizedKeys, EphemeralKeypair, EphemeralSecret, Handshake, IdentitySecret, KeyError,
    Protection, PublicKey, SecretBytes, Session, SessionKey,
};

/// Asserts `debug` shows none of `secret`, in hex (either case) or base64.
#[track_caller]
fn assert_no_secret(debug: &str, secret: &[u8]) {
    let forms = [
        hex::encode(secret),
        hex::encode_upper(secret),
        STANDARD.encode(secret),
    ];
    for form in forms {
        assert!(
            !debug.contains(&form),
            "Debug output leaks a secret: {debug}"
        );
    }
    // Nor any 8-byte window of it, in case it is printed piecewise.
    for window in secret.windows(8) {
        assert!(
            !debug.contains(&hex::encode(window)),
            "Debug output leaks secret bytes: {debug}"
        );
    }
    assert!(debug.contains("REDACTED"), "no redaction marker in {debug}");
}

#[test]
fn debug_output_never_contains_secret_bytes() {
    let identity = IdentitySecret::from_seed(&[0x11; 32]);
    let secret = identity.expose_secret(|bytes| bytes.to_vec());
    assert_no_secret(&format!("{identity:?}"), &secret);
    assert_no_secret(&format!("{identity:#?}"), &secret);

    let encoded = identity.to_base64();
    assert_no_secret(&format!("{encoded:?}"), &secret);
    assert_eq!(
        encoded.expose_secret(),
        STANDARD.encode(&secret),
        "the encoding itself is the secret"
    );

    let key = [0x22; 32];
    let session_key = SessionKey::from_bytes(&key);
    assert_no_secret(&format!("{session_key:?}"), &key);
    let session = Session::from_key_bytes(&key, identity.public_key());
    assert_no_secret(&format!("{session:?}"), &key);
    assert!(format!("{session:?}").contains(&identity.public_key().to_base64()));

    let ephemeral = [0x33; 32];
    let handshake = Handshake::with_ephemeral_secret(&identity, AuthorizedKeys::any(), &ephemeral);
    let debug = format!("{handshake:?}");
    assert_no_secret(&debug, &ephemeral);
    assert_no_secret(&debug, &secret);
    assert_no_secret(
        &format!("{:?}", EphemeralSecret::from_bytes(&ephemeral)),
        &ephemeral,
    );
    assert_eq!(
        format!("{:?}", SecretBytes::<32>::new_with(|b| *b = key)),
        "SecretBytes([REDACTED])"
    );
}

#[test]
fn wipe_zeroes_the_secret_memory() {
    // Drop runs this same wipe and then sodium_free, which unmaps the pages:
    // reading them after drop would fault, so the wipe is observed here,
    // through the allocation itself, between the two steps.
    for protection in [Protection::NoAccess, Protection::ReadOnly] {
        let mut secret = SecretBytes::<64>::with_protection(protection, |bytes| bytes.fill(0xa5));
        assert_eq!(secret.protection(), protection);
        assert!(secret.expose_secret(|bytes| bytes.iter().all(|&b| b == 0xa5)));
        secret.wipe();
        secret.expose_secret(|bytes| {
            assert_eq!(bytes, &[0u8; 64], "{protection:?}: wipe left bytes behind");
        });
    }
}

#[test]
fn secrets_default_to_noaccess() {
    assert_eq!(
        SecretBytes::<8>::new_with(|_| ()).protection(),
        Protection::NoAccess
    );
    assert_eq!(
        SecretBytes::<8>::try_new_with(|_| Ok::<_, ()>(()))
            .expect("fill succeeds")
            .protection(),
        Protection::NoAccess
    );
}

#[test]
fn nested_and_concurrent_exposure_keeps_memory_readable() {
    let secret = SecretBytes::<32>::new_with(|bytes| bytes.fill(7));
    let sum: u32 = secret.expose_secret(|outer| {
        // An inner call ending must not revoke access from the outer one.
        let inner = secret.expose_secret(|inner| inner[0]);
        u32::from(inner) + outer.iter().map(|&b| u32::from(b)).sum::<u32>()
    });
    assert_eq!(sum, 7 + 7 * 32);

    // Reader and writer tasks share one session; a race between one thread
    // revoking access and another reading would crash this test.
    let session = Arc::new(Session::from_key_bytes(
        &[9; 32],
        PublicKey::from_bytes(&[0; 32]),
    ));
    let threads: Vec<_> = (0..8u8)
        .map(|i| {
            let session = Arc::clone(&session);
            std::thread::spawn(move || {
                for j in 0..200u8 {
                    let message = [i, j];
                    assert_eq!(
                        session.open(&session.seal(&message)).expect("opens"),
                        message
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
}

#[test]
fn secret_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SecretBytes<32>>();
    assert_send_sync::<IdentitySecret>();
    assert_send_sync::<SessionKey>();
    assert_send_sync::<Session>();
    assert_send_sync::<Handshake>();
}

/// Set in the child processes that must crash.
const CHILD_ENV: &str = "MTGNET_ENCRYPTION_NOACCESS_CHILD";

/// Runs one test of this binary in a child process; its stdout and the
/// signal that killed it, if any.
#[cfg(unix)]
fn run_child(test: &str) -> (String, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    let output = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("spawn test binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (stdout, output.status.signal())
}

/// SIGSEGV on Linux; some systems raise SIGBUS (7 or 10) for a protected page.
fn is_fault(signal: Option<i32>) -> bool {
    matches!(signal, Some(11) | Some(10) | Some(7))
}

#[test]
fn noaccess_child_reads_guarded_memory() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful inside `reading_identity_secret_outside_expose_faults`
    }
    let identity = IdentitySecret::from_seed(&[1; 32]);
    // Using the secret leaves it inaccessible again afterwards.
    assert_eq!(identity.sign(b"x").len(), 65);
    // SAFETY: deliberately not safe: the page is PROT_NONE, so this read must
    // kill the process with SIGSEGV, which the parent test checks.
    let byte = unsafe { std::ptr::read_volatile(identity.as_ptr()) };
    println!("read {byte} from protected memory: protection is not working");
}

#[cfg(unix)]
#[test]
fn reading_identity_secret_outside_expose_faults() {
    let (stdout, signal) = run_child("secrets::noaccess_child_reads_guarded_memory");
    assert!(
        !stdout.contains("protection is not working"),
        "child read protected memory:\n{stdout}"
    );
    assert!(
        is_fault(signal),
        "child was not killed by a fault: {signal:?}\n{stdout}"
    );
}

#[test]
fn readonly_child_writes_session_key() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful inside `writing_session_key_faults`
    }
    // A session key as the handshake makes it.
    let alice = EphemeralKeypair::generate();
    let bob = EphemeralKeypair::generate();
    let bob_public = *bob.public_key();
    let key = alice.into_session_key(&bob_public).expect("key exchange");
    let first = key.expose_secret(|k| k[0]);
    // SAFETY: the region is PROT_READ for the key's lifetime: reading it
    // directly is allowed (that is the documented trade-off).
    let read = unsafe { std::ptr::read_volatile(key.as_ptr()) };
    assert_eq!(read, first);
    println!("session key readable");
    // SAFETY: deliberately not safe: the page is read-only, so this write
    // must kill the process with SIGSEGV, which the parent test checks.
    unsafe { std::ptr::write_volatile(key.as_ptr().cast_mut(), read ^ 0xff) };
    println!("wrote to the session key: protection is not working");
}

#[cfg(unix)]
#[test]
fn writing_session_key_faults() {
    let (stdout, signal) = run_child("secrets::readonly_child_writes_session_key");
    assert!(
        stdout.contains("session key readable"),
        "child did not get to the write:\n{stdout}"
    );
    assert!(
        !stdout.contains("protection is not working"),
        "child wrote to the session key:\n{stdout}"
    );
    assert!(
        is_fault(signal),
        "child was not killed by a fault: {signal:?}\n{stdout}"
    );
}

/// Kilobytes of locked memory of this process (`VmLck` in /proc/self/status).
#[cfg(target_os = "linux")]
fn locked_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmLck:"))
        .expect("VmLck line");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmLck value")
}

/// The soft RLIMIT_MEMLOCK in bytes, `None` for unlimited.
#[cfg(target_os = "linux")]
fn memlock_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    line.split_whitespace().nth(3).and_then(|n| n.parse().ok())
}

#[cfg(target_os = "linux")]
#[test]
fn secret_memory_is_locked_against_swapping() {
    assert_regions_locked("identity-style secrets", || {
        Box::new(SecretBytes::<64>::new_with(|b| b.fill(3)))
    });
    // The session key is read-only rather than inaccessible, but just as locked.
    assert_regions_locked("session keys", || {
        Box::new(SessionKey::from_bytes(&[4; 32]))
    });
}

/// Allocates many secrets with `make` and checks `VmLck` grows by about a
/// page each, and shrinks back when they are dropped.
#[cfg(target_os = "linux")]
fn assert_regions_locked(what: &str, make: impl Fn() -> Box<dyn std::any::Any>) {
    const COUNT: u64 = 256;
    // Each sodium_malloc region locks at least one 4 KiB page.
    let needed_kib = COUNT * 4;
    let locked = locked_kib();
    if let Some(limit) = memlock_limit().filter(|limit| limit / 1024 < 2 * needed_kib + locked) {
        eprintln!(
            "SKIPPED secret_memory_is_locked_against_swapping ({what}): \
             RLIMIT_MEMLOCK is {limit} bytes ({} KiB) with {locked} KiB already locked, \
             {} KiB needed to observe locking; raise it (ulimit -l) to run this check",
            limit / 1024,
            2 * needed_kib + locked
        );
        return;
    }
    let before = locked_kib();
    let secrets: Vec<_> = (0..COUNT).map(|_| make()).collect();
    let during = locked_kib();
    drop(secrets);
    let after = locked_kib();
    // Other tests allocate and free secrets concurrently; allow them half.
    assert!(
        during >= before + needed_kib / 2,
        "{what}: VmLck {before} -> {during} kB for {COUNT} secrets"
    );
    assert!(
        after + needed_kib / 2 <= during,
        "{what}: VmLck {during} -> {after} kB after freeing"
    );
}

#[test]
fn authorized_keys_file_with_comments_and_blank_lines() {
    let text = "# servers\n\
                \n\
                Mp6Kq/1xj2ftN8kkXsyuK9NH8n9T5iiTZS1iu0+5SHU= alice laptop\n\
                \t  B69iGQJddZdrBPhtZJgLsqeoeU3waXX6SO8W9l/OSyY=\t# bob\r\n\
                   # indented comment\n";
    let keys = AuthorizedKeys::parse(text).expect("valid file");
    assert!(!keys.is_any());
    let listed: Vec<String> = keys.keys().iter().map(PublicKey::to_base64).collect();
    assert_eq!(
        listed,
        [
            "Mp6Kq/1xj2ftN8kkXsyuK9NH8n9T5iiTZS1iu0+5SHU=",
            "B69iGQJddZdrBPhtZJgLsqeoeU3waXX6SO8W9l/OSyY="
        ]
    );
    let c: PublicKey = "kIRh2TbEmMWVIFEz73P048i2lOYBoSyZJQRaFeJRlYo="
        .parse()
        .expect("key");
    assert!(keys.is_authorized(&keys.keys()[1]));
    assert!(!keys.is_authorized(&c));
}

#[test]
fn authorized_keys_bad_line_names_its_number() {
    let text = "# header\nMp6Kq/1xj2ftN8kkXsyuK9NH8n9T5iiTZS1iu0+5SHU=\n\nMp6Kq/1xj2ftN8kkXsyuK9NH8n9T5iiTZS1iu0+5SHV=\n";
    let err = AuthorizedKeys::parse(text).expect_err("non-canonical key on line 4");
    assert_eq!(err.line, 4);
    assert_eq!(err.reason, KeyError::NonCanonicalBase64);
    assert!(err.to_string().contains("line 4"), "{err}");
    let err = AuthorizedKeys::parse(
        "tRQDyKmVWRWUSqaWZDhxuk9maYlmtL37V8ETy5y1bGEynoqr/XGPZ+03ySRezK4r00fyf1PmKJNlLWK7T7lIdQ==",
    )
    .expect_err("a secret is not a public key");
    assert_eq!(
        (err.line, err.reason),
        (
            1,
            KeyError::WrongLength {
                expected: 32,
                len: 64
            }
        )
    );
}

#[test]
fn empty_authorized_keys_file_authorizes_nobody() {
    for text in ["", "\n\n", "# only comments\n   \n"] {
        let keys = AuthorizedKeys::parse(text).expect("valid empty file");
        assert!(!keys.is_any());
        assert!(keys.keys().is_empty());
        assert!(
            !keys.is_authorized(&IdentitySecret::generate().public_key()),
            "{text:?}"
        );
    }
    assert!(AuthorizedKeys::default().is_any());
    assert!(AuthorizedKeys::any().is_authorized(&IdentitySecret::generate().public_key()));
}

#[test]
fn reused_secret_regions_start_zeroed() {
    // Odd size, so that other tests running at the same time do not share
    // this size's pool.
    let first = SecretBytes::<77>::new_with(|b| b.fill(0xAB));
    let address = first.as_ptr();
    drop(first);
    let mut seen = Vec::new();
    let second = SecretBytes::<77>::new_with(|b| seen.extend_from_slice(b));
    assert_eq!(second.as_ptr(), address, "the wiped region was reused");
    assert!(
        seen.iter().all(|&b| b == 0),
        "a reused region holds no old secret"
    );
}
