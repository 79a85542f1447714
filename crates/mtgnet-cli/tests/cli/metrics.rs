//! `mtgnet serve --metrics ADDR`: after calls that succeed, fail, are
//! invalid, and handshakes that are refused, `GET /metrics` shows each
//! series with the right counts (read as Prometheus text).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{DEADLINE, Server, keygen_into, run};

/// A port nothing listens on right now (the exporter cannot report a port
/// it picked itself, so the test picks one).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// `GET /metrics`: the body of a 200 answer.
fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    body.to_owned()
}

/// The samples of an exposition text, keyed `name{label="value",...}` with
/// the labels sorted by name.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            (normalized(series), value)
        })
        .collect()
}

/// `name{b="2",a="1"}` as `name{a="1",b="2"}`.
fn normalized(series: &str) -> String {
    let Some((name, labels)) = series.split_once('{') else {
        return format!("{series}{{}}");
    };
    let labels = labels.strip_suffix('}').expect("closing brace");
    let mut pairs = Vec::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        let end = after.find('"').expect("closing quote");
        pairs.push(format!("{key}=\"{}\"", &after[..end]));
        rest = after[end + 1..].trim_start_matches(',');
    }
    pairs.sort();
    format!("{name}{{{}}}", pairs.join(","))
}

/// The value of `name` with `labels`, or a failure listing what is there.
fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    pairs.sort();
    let key = format!("{name}{{{}}}", pairs.join(","));
    *samples.get(&key).unwrap_or_else(|| {
        let mut present: Vec<&String> = samples.keys().filter(|k| k.starts_with(name)).collect();
        present.sort();
        panic!("no {key}; present: {present:#?}")
    })
}

#[test]
fn metrics_show_every_series_with_the_right_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (client_secret, client_key) = keygen_into(dir.path(), "client.secret");
    let authorized = dir.path().join("authorized");
    std::fs::write(&authorized, format!("{client_key} the test client\n")).expect("write");
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start(&[
        "--metrics",
        &metrics,
        "--authorized-keys",
        authorized.to_str().expect("UTF-8"),
        "--handshake-timeout",
        "2",
    ]);
    let call = |extra: &[&str]| {
        let mut args = vec![
            "call",
            &server.addr,
            "--server-key",
            server.key(),
            "--secret-file",
            &client_secret,
        ];
        args.extend(extra);
        run(&args)
    };
    for (a, b) in [("1", "2"), ("3", "4")] {
        let out = call(&["Test", "add", a, b]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let out = call(&["--encryption", "v1", "Test", "echo", "x"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = call(&["Test", "fail"]);
    assert_eq!(out.code, Some(1), "a failed call: {out:?}");
    let out = call(&["Test", "nope"]);
    assert_eq!(out.code, Some(1), "an invalid call: {out:?}");
    // A client key the server does not authorize: a throwaway identity.
    let out = run(&[
        "call",
        &server.addr,
        "--server-key",
        server.key(),
        "Test",
        "add",
        "1",
        "1",
    ]);
    assert_eq!(out.code, Some(2), "a rejected handshake: {out:?}");
    // Not a handshake; then a client that says nothing until the timeout.
    for bytes in [&b"5:hello\n"[..], b""] {
        let mut raw = TcpStream::connect(&server.addr).expect("connect");
        raw.set_read_timeout(Some(DEADLINE)).expect("timeout");
        raw.write_all(bytes).expect("write");
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the server answers nothing: {rest:?}");
    }

    // The server counts a connection closed once its task has ended.
    let deadline = Instant::now() + DEADLINE;
    let samples = loop {
        let samples = samples(&scrape(&metrics));
        if value(&samples, "mtgnet_connections_open", &[]) == 0.0 || Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let get = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

    assert_eq!(get("mtgnet_connections_open", &[]), 0.0);
    let connections = |encryption| get("mtgnet_connections_total", &[("encryption", encryption)]);
    assert_eq!(
        (connections("plain"), connections("v1"), connections("v2")),
        (0.0, 1.0, 4.0)
    );
    let handshakes = |version, outcome| {
        get(
            "mtgnet_handshakes_total",
            &[("version", version), ("outcome", outcome)],
        )
    };
    assert_eq!(handshakes("v2", "ok"), 4.0);
    assert_eq!(handshakes("v1", "ok"), 1.0);
    assert_eq!(handshakes("v2", "not_authorized"), 1.0);
    assert_eq!(handshakes("unknown", "malformed"), 1.0);
    assert_eq!(handshakes("unknown", "timeout"), 1.0);
    let handshake_series = samples
        .keys()
        .filter(|k| k.starts_with("mtgnet_handshakes_total"))
        .count();
    assert_eq!(
        handshake_series, 5,
        "no other handshake outcome: {samples:#?}"
    );

    let calls = |service, method, outcome| {
        get(
            "mtgnet_calls_total",
            &[
                ("service", service),
                ("method", method),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(calls("Test", "add", "ok"), 2.0);
    assert_eq!(calls("Test", "echo", "ok"), 1.0);
    assert_eq!(calls("Test", "fail", "error"), 1.0);
    assert_eq!(calls("unknown", "unknown", "invalid"), 1.0);
    let call_series = samples
        .keys()
        .filter(|k| k.starts_with("mtgnet_calls_total"))
        .count();
    assert_eq!(call_series, 4, "no other call series: {samples:#?}");

    let add = [("service", "Test"), ("method", "add")];
    assert_eq!(get("mtgnet_call_duration_seconds_count", &add), 2.0);
    let mut add_inf = add.to_vec();
    add_inf.push(("le", "+Inf"));
    assert_eq!(get("mtgnet_call_duration_seconds_bucket", &add_inf), 2.0);
    assert!(get("mtgnet_call_duration_seconds_sum", &add) > 0.0);
    assert_eq!(
        get(
            "mtgnet_call_duration_seconds_count",
            &[("service", "Test"), ("method", "fail")]
        ),
        1.0
    );

    // Exact byte counts depend on the keys and the calls' timing of close
    // records; every connection moved some in both directions.
    assert!(get("mtgnet_bytes_total", &[("direction", "in")]) > 0.0);
    assert!(get("mtgnet_bytes_total", &[("direction", "out")]) > 0.0);

    for limit in [
        "max_connections",
        "max_in_flight",
        "max_connection_bytes",
        "max_frame",
        "batch",
        "idle_timeout",
        "write_stall",
        "shutdown_grace",
    ] {
        assert_eq!(
            get("mtgnet_limit_hits_total", &[("limit", limit)]),
            0.0,
            "{limit}"
        );
    }
    assert_eq!(
        get("mtgnet_limit_hits_total", &[("limit", "handshake_timeout")]),
        1.0
    );
}

#[test]
fn metrics_on_port_0_or_a_taken_port_are_refused_with_exit_2() {
    let out = run(&[
        "serve",
        "--plain",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        "error: --metrics needs a port other than 0: the port it picks could not be reported\n"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let out = run(&[
        "serve",
        "--plain",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        &address,
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("error: cannot serve metrics on {address}: ")),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "nothing announced: {out:?}");
}
