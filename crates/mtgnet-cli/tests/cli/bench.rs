//! `mtgnet bench`: load runs in-process and against `mtgnet serve`, and `--crypto`.

use serde_json::Value;

use crate::util::{Output, Server, run};

/// Every key of a load run's JSON object.
const KEYS: [&str; 14] = [
    "mode",
    "encryption",
    "kind",
    "connections",
    "in_flight",
    "payload",
    "completed",
    "errors",
    "seconds",
    "per_sec",
    "mb_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
];

/// The one JSON object on stdout, checked to hold exactly [`KEYS`].
fn report(out: &Output) -> serde_json::Map<String, Value> {
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    let value: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON value");
    let Value::Object(object) = value else {
        panic!("not an object: {}", out.stdout);
    };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = KEYS.to_vec();
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{}", out.stdout);
    object
}

fn number(object: &serde_json::Map<String, Value>, key: &str) -> f64 {
    object[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {object:?}"))
}

/// Calls were made, none failed, and the numbers make sense.
fn assert_healthy(object: &serde_json::Map<String, Value>) {
    assert!(number(object, "completed") > 0.0, "{object:?}");
    assert_eq!(object["errors"], 0, "{object:?}");
    for key in [
        "seconds",
        "per_sec",
        "mb_per_sec",
        "p50_us",
        "p99_us",
        "p999_us",
    ] {
        assert!(number(object, key) > 0.0, "{key}: {object:?}");
    }
    assert!(number(object, "p50_us") <= number(object, "p99_us"));
    assert!(number(object, "p99_us") <= number(object, "p999_us"));
}

#[test]
fn encrypted_in_process_calls() {
    let object = report(&run(&["bench", "--json", "--duration", "0.5"]));
    assert_healthy(&object);
    assert_eq!(object["mode"], "encrypted");
    assert_eq!(object["encryption"], "v2", "v2 by default");
    assert_eq!(object["kind"], "calls");
    assert_eq!(
        (
            &object["connections"],
            &object["in_flight"],
            &object["payload"]
        ),
        (&Value::from(1), &Value::from(64), &Value::from(100))
    );
}

#[test]
fn plain_in_process_calls_with_options() {
    let object = report(&run(&[
        "bench",
        "--plain",
        "--connections",
        "2",
        "--in-flight",
        "4",
        "--payload",
        "1000",
        "--json",
        "--duration",
        "0.5",
    ]));
    assert_healthy(&object);
    assert_eq!(object["mode"], "plain");
    assert_eq!(object["encryption"], Value::Null);
    assert_eq!(
        (
            &object["connections"],
            &object["in_flight"],
            &object["payload"]
        ),
        (&Value::from(2), &Value::from(4), &Value::from(1000))
    );
}

#[test]
fn encryption_v1_and_v2_in_process_and_against_serve() {
    let server = Server::encrypted();
    for version in ["v1", "v2"] {
        let object = report(&run(&[
            "bench",
            "--json",
            "--duration",
            "0.3",
            "--encryption",
            version,
        ]));
        assert_healthy(&object);
        assert_eq!(object["encryption"], version);
        // `mtgnet serve` accepts both by default.
        let object = report(&run(&[
            "bench",
            "--addr",
            &server.addr,
            "--server-key",
            server.key(),
            "--encryption",
            version,
            "--json",
            "--duration",
            "0.3",
        ]));
        assert_healthy(&object);
        assert_eq!(object["encryption"], version);
    }
}

#[test]
fn handshakes_encrypted_and_plain() {
    for (flags, mode) in [(&[][..], "encrypted"), (&["--plain"][..], "plain")] {
        let mut args = vec!["bench", "--handshakes", "--json", "--duration", "0.5"];
        args.extend_from_slice(flags);
        let object = report(&run(&args));
        assert_healthy(&object);
        assert_eq!(object["kind"], "handshakes");
        assert_eq!(object["mode"], mode);
        assert_eq!(object["in_flight"], 1);
    }
}

#[test]
fn against_a_serve_process() {
    let server = Server::encrypted();
    let object = report(&run(&[
        "bench",
        "--addr",
        &server.addr,
        "--server-key",
        server.key(),
        "--connections",
        "2",
        "--json",
        "--duration",
        "0.5",
    ]));
    assert_healthy(&object);
    assert_eq!(object["mode"], "encrypted");

    let server = Server::plain();
    let object = report(&run(&[
        "bench",
        "--addr",
        &server.addr,
        "--plain",
        "--handshakes",
        "--json",
        "--duration",
        "0.5",
    ]));
    assert_healthy(&object);
    assert_eq!(
        (&object["mode"], &object["kind"]),
        (&"plain".into(), &"handshakes".into())
    );
}

#[test]
fn readable_summary_without_json() {
    let out = run(&["bench", "--plain", "--duration", "0.3", "--in-flight", "8"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for part in [
        "plain",
        "1 connection × 8 in flight",
        "100 bytes",
        "0 errors",
        "calls/s",
        "MB/s",
        "p50",
        "p99.9",
    ] {
        assert!(out.stdout.contains(part), "no {part:?} in {}", out.stdout);
    }
}

#[test]
fn wrong_server_settings_fail_at_once_with_exit_2() {
    let server = Server::plain();
    let out = run(&[
        "bench",
        "--addr",
        &server.addr,
        "--duration",
        "0.5",
        "--json",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");

    let encrypted = Server::encrypted();
    let other_key = Server::encrypted();
    let out = run(&[
        "bench",
        "--addr",
        &encrypted.addr,
        "--server-key",
        other_key.key(),
        "--duration",
        "0.5",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(
        out.stderr.contains("not one of the --server-key keys"),
        "{out:?}"
    );

    let out = run(&["bench", "--connections", "0"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.starts_with("error: --connections"), "{out:?}");
    let out = run(&["bench", "--crypto", "--plain"]);
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[test]
fn crypto_reports_four_sizes() {
    let out = run(&["bench", "--crypto", "--json", "--duration", "1"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    let value: Value = serde_json::from_str(&out.stdout).expect("one JSON value");
    // v1 frames, then v2 records, each next to its raw libsodium baseline.
    for table in ["crypto", "v2_records"] {
        let rows = value[table].as_array().expect("a table of rows");
        let sizes: Vec<u64> = rows
            .iter()
            .map(|row| row["size"].as_u64().expect("size"))
            .collect();
        assert_eq!(sizes, [64, 1024, 65_536, 1_048_576], "{table}");
        for row in rows {
            for key in ["seal_mb_s", "raw_seal_mb_s", "open_mb_s", "raw_open_mb_s"] {
                let rate = row[key].as_f64().unwrap_or_else(|| panic!("{key}: {row}"));
                assert!(rate > 0.0, "{table} {key}: {row}");
            }
        }
    }
}

#[test]
fn crypto_table_shows_ratios() {
    let out = run(&["bench", "--crypto", "--duration", "0.4"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for part in ["ratio", "64 B", "1 KiB", "64 KiB", "1 MiB"] {
        assert!(out.stdout.contains(part), "no {part:?} in {}", out.stdout);
    }
}

/// The report of a `--baseline` run: the usual keys plus the baseline's,
/// and the ratio is the two rates' quotient.
fn assert_baseline(out: &Output) {
    assert_eq!(out.code, Some(0), "{out:?}");
    let value: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON value");
    let Value::Object(mut object) = value else {
        panic!("not an object: {}", out.stdout);
    };
    let baseline = object.remove("baseline_per_sec").expect("baseline_per_sec");
    let ratio = object.remove("baseline_ratio").expect("baseline_ratio");
    let p50 = object.remove("baseline_p50_us").expect("baseline_p50_us");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{}", out.stdout);
    assert_healthy(&object);
    let (baseline, ratio) = (
        baseline.as_f64().expect("number"),
        ratio.as_f64().expect("number"),
    );
    assert!(
        baseline > 0.0 && p50.as_f64().expect("number") > 0.0,
        "{out:?}"
    );
    let expected_ratio = number(&object, "per_sec") / baseline;
    assert!(
        (ratio - expected_ratio).abs() < 0.001,
        "{ratio} vs {expected_ratio}"
    );
}

#[test]
fn baseline_runs_beside_an_in_process_server() {
    let out = run(&[
        "bench",
        "--plain",
        "--baseline",
        "--duration",
        "0.3",
        "--in-flight",
        "8",
        "--json",
    ]);
    assert_baseline(&out);
}

#[test]
fn baseline_runs_in_a_process_of_its_own_beside_a_remote_server() {
    let server = Server::plain();
    let out = run(&[
        "bench",
        "--plain",
        "--addr",
        &server.addr,
        "--baseline",
        "--connections",
        "2",
        "--duration",
        "0.3",
        "--json",
    ]);
    assert_baseline(&out);
    let out = run(&["bench", "--baseline", "--handshakes"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--baseline"), "{out:?}");
    let out = run(&["bench", "--threads", "0"]);
    assert_eq!(
        (out.code, out.stderr.trim_end()),
        (
            Some(2),
            "error: invalid --threads: 0; it must be at least 1"
        )
    );
}

#[test]
fn several_connections_run_on_threads_of_their_own_and_add_up() {
    let server = Server::plain();
    // 5 connections over 2 threads: shares of 3 and 2.
    let object = report(&run(&[
        "bench",
        "--addr",
        &server.addr,
        "--plain",
        "--connections",
        "5",
        "--threads",
        "2",
        "--in-flight",
        "3",
        "--json",
        "--duration",
        "0.5",
    ]));
    assert_healthy(&object);
    assert_eq!(
        (&object["connections"], &object["in_flight"]),
        (&Value::from(5), &Value::from(3))
    );
}

/// The threads of process `pid` named `name`.
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.trim_end() == name)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn each_client_thread_runs_its_own_share_of_the_connections() {
    let server = Server::plain();
    for (connections, threads, expected) in [("3", "2", 2), ("2", "4", 2), ("1", "2", 0)] {
        let mut bench = crate::util::mtgnet()
            .args(["bench", "--addr", &server.addr, "--plain", "--json"])
            .args(["--connections", connections, "--threads", threads])
            .args(["--duration", "1.5"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("bench starts");
        // Counted until it ends: the most seen at once.
        let mut seen = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            seen = seen.max(threads_named(bench.id(), "mtgnet-bench"));
            if let Some(status) = bench.try_wait().expect("bench runs") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = bench.kill();
                panic!("a 1.5 s bench still runs after 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
        assert_eq!(
            seen, expected,
            "--connections {connections} --threads {threads}: client threads"
        );
    }
}

#[test]
fn a_connection_that_fails_on_one_thread_stops_them_all_with_its_error() {
    let encrypted = Server::encrypted();
    let other_key = Server::encrypted();
    let started = std::time::Instant::now();
    let out = run(&[
        "bench",
        "--addr",
        &encrypted.addr,
        "--server-key",
        other_key.key(),
        "--connections",
        "4",
        "--threads",
        "2",
        "--duration",
        "30",
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(2), ""), "{out:?}");
    assert!(
        out.stderr.contains("not one of the --server-key keys"),
        "{out:?}"
    );
    // Not a run of 30 s: nothing started, nothing waited for the others.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn busy_polling_client_against_a_busy_polling_serve() {
    let server = Server::start(&["--plain", "--busy-poll", "10000"]);
    let object = report(&run(&[
        "bench",
        "--addr",
        &server.addr,
        "--plain",
        "--busy-poll",
        "50",
        "--in-flight",
        "1",
        "--json",
        "--duration",
        "0.5",
    ]));
    assert_healthy(&object);
}
