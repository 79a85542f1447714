//! `mtgnet keygen` and `mtgnet pubkey`.

use std::os::unix::fs::PermissionsExt;

use crate::util::{keygen_into, mtgnet, run, run_with};

#[test]
fn keygen_prints_a_secret_then_its_public_key() {
    let out = run(&["keygen"]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!((lines[0].len(), lines[1].len()), (88, 44));
    let pubkey = run_with(mtgnet().arg("pubkey"), Some(&format!("{}\n", lines[0])));
    assert_eq!((pubkey.code, pubkey.stdout.trim_end()), (Some(0), lines[1]));
}

#[test]
fn keygen_out_writes_a_private_file_and_prints_the_public_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, public) = keygen_into(dir.path(), "id.secret");
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = std::fs::read_to_string(&path).expect("read");
    assert_eq!(secret.len(), 89);
    assert!(secret.ends_with('\n'));
    assert_eq!(public.len(), 44);
    let out = run(&["pubkey", "--secret-file", &path]);
    assert_eq!(
        (out.code, out.stdout.trim_end(), out.stderr.as_str()),
        (Some(0), public.as_str(), "")
    );
}

#[test]
fn keygen_out_refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (path, first) = keygen_into(dir.path(), "id.secret");
    let before = std::fs::read_to_string(&path).expect("read");
    let out = run(&["keygen", "--out", &path]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains("--force"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), before);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run(&["keygen", "--out", &path, "--force"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let second = out.stdout.trim_end();
    assert_ne!(second, first);
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let check = run(&["pubkey", "--secret-file", &path]);
    assert_eq!(check.stdout.trim_end(), second);
}

#[test]
fn pubkey_of_an_invalid_secret_exits_2() {
    let out = run_with(mtgnet().arg("pubkey"), Some("not a key\n"));
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(
        out.stderr.starts_with("error: invalid secret on stdin: "),
        "{out:?}"
    );
    let out = run(&["pubkey", "--secret-file", "/nonexistent/secret"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.starts_with("error: cannot read secret file"),
        "{out:?}"
    );
}

#[test]
fn secret_from_the_environment_is_the_identity() {
    let out = run(&["keygen"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let server = crate::util::Server::start_with_env(&[], ("MTGNET_SECRET", lines[0]));
    assert_eq!(server.key(), lines[1]);
}
