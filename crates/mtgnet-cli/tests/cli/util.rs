//! Running the binary: one-shot commands with a deadline, and servers that
//! are killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// No test command may run longer than this.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// The binary under test.
pub(crate) fn mtgnet() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mtgnet"));
    command.env_remove("MTGNET_SECRET").env_remove("RUST_LOG");
    command
}

/// What a finished command did.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

/// Runs `mtgnet ARGS` to completion (killing it after [`DEADLINE`]).
pub(crate) fn run(args: &[&str]) -> Output {
    run_with(mtgnet().args(args), None)
}

/// Runs a prepared command, feeding `stdin` when given.
pub(crate) fn run_with(command: &mut Command, stdin: Option<&str>) -> Output {
    let started = Instant::now();
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mtgnet");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_until(&mut child, started + DEADLINE);
    let elapsed = started.elapsed();
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("mtgnet {command:?} still running after {DEADLINE:?}");
    });
    Output {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        elapsed,
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// Waits for `child` to exit, up to `deadline`.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A running `mtgnet serve`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    /// The address it listens on.
    pub(crate) addr: String,
    /// Its public key, when encrypted.
    pub(crate) public_key: Option<String>,
    /// Started with `--encryption v1`: clients must speak v1 to it.
    pub(crate) v1_only: bool,
}

impl Server {
    /// An encrypted server with a throwaway identity.
    pub(crate) fn encrypted() -> Server {
        Server::start(&[])
    }

    /// A plain server.
    pub(crate) fn plain() -> Server {
        Server::start(&["--plain"])
    }

    /// `mtgnet serve --listen 127.0.0.1:0 EXTRA...`.
    pub(crate) fn start(extra: &[&str]) -> Server {
        Server::start_at("127.0.0.1:0", extra)
    }

    /// `mtgnet serve --listen LISTEN EXTRA...`.
    pub(crate) fn start_at(listen: &str, extra: &[&str]) -> Server {
        Server::spawn(
            mtgnet()
                .args(["serve", "--listen", listen])
                .args(extra)
                .stderr(Stdio::null()),
            extra,
        )
    }

    /// As [`Server::start`], with one more environment variable.
    pub(crate) fn start_with_env(extra: &[&str], (name, value): (&str, &str)) -> Server {
        Server::spawn(
            mtgnet()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(extra)
                .env(name, value)
                .stderr(Stdio::null()),
            extra,
        )
    }

    /// `mtgnet proxy --listen 127.0.0.1:0 EXTRA...`: clients speak v2 to it.
    pub(crate) fn proxy(extra: &[&str]) -> Server {
        Server::proxy_logging(extra, Stdio::null())
    }

    /// As [`Server::proxy`], its log (stderr) going to `stderr`.
    pub(crate) fn proxy_logging(extra: &[&str], stderr: impl Into<Stdio>) -> Server {
        Server::spawn(
            mtgnet()
                .args(["proxy", "--listen", "127.0.0.1:0"])
                .args(extra)
                .stderr(stderr),
            &[],
        )
    }

    /// Starts `command` (stderr already set), reading its startup lines.
    fn spawn(command: &mut Command, extra: &[&str]) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn mtgnet");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let next_line = || {
            received
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("mtgnet printed no line: {e}"))
        };
        let mut server = Server {
            child,
            addr: String::new(),
            public_key: None,
            v1_only: extra.windows(2).any(|pair| pair == ["--encryption", "v1"]),
        };
        let first = next_line();
        server.addr = first
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("first line is not `listening ADDR`: {first:?}"))
            .to_owned();
        if !extra.contains(&"--plain") {
            let second = next_line();
            let key = second
                .strip_prefix("public-key ")
                .unwrap_or_else(|| panic!("second line is not `public-key B64`: {second:?}"));
            assert_eq!(key.len(), 44, "{key:?}");
            server.public_key = Some(key.to_owned());
        }
        server
    }

    /// The server's public key (panics for a plain server).
    pub(crate) fn key(&self) -> &str {
        self.public_key.as_deref().expect("an encrypted server")
    }

    /// Asserts that a fresh `mtgnet call` (speaking what this server
    /// speaks) is served: `Test.add(20, 22)` answers 42.
    pub(crate) fn assert_serves(&self) {
        let mut args = vec!["call", &self.addr, "Test", "add", "20", "22"];
        match &self.public_key {
            Some(key) => args.extend(["--server-key", key]),
            None => args.push("--plain"),
        }
        if self.v1_only {
            args.extend(["--encryption", "v1"]);
        }
        let out = run(&args);
        assert_eq!(
            (out.code, out.stdout.trim_end()),
            (Some(0), "42"),
            "{out:?}"
        );
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    pub(crate) fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal("TERM", limit)
    }

    /// Sends the signal named `name` (`TERM`, `INT`) and waits up to
    /// `limit` for the exit status.
    pub(crate) fn signal(&mut self, name: &str, limit: Duration) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        wait_until(&mut self.child, Instant::now() + limit)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mtgnet keygen --out DIR/NAME`: the secret file's path and the public key.
pub(crate) fn keygen_into(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let path = path.to_str().expect("UTF-8 path").to_owned();
    let out = run(&["keygen", "--out", &path]);
    assert_eq!(out.code, Some(0), "{out:?}");
    (path, out.stdout.trim_end().to_owned())
}
