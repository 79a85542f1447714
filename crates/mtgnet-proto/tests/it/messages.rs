//! Every case of `tests/vectors/messages.json`.

use std::sync::Arc;

use mtgnet_proto::client::ClientCore;
use mtgnet_proto::wire::{self, CallResult};
use mtgnet_proto::{Condition, Id, Peer, ProtocolError, RawJson, Registry, RequestError, Service};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Vectors {
    requests: Vec<RequestCase>,
    invalid_requests: Vec<InvalidRequestCase>,
    responses: Vec<ResponseCase>,
    invalid_responses: Vec<InvalidResponseCase>,
    client_cases: Vec<ClientCase>,
    edge_cases: Vec<EdgeCase>,
}

#[derive(Deserialize)]
struct RequestCase {
    name: String,
    json: String,
    calls: Vec<ExpectedCall>,
}

#[derive(Deserialize)]
struct ExpectedCall {
    service: String,
    method: String,
    id_json: String,
    notification: bool,
    args: Value,
}

#[derive(Deserialize)]
struct InvalidRequestCase {
    name: String,
    json: Option<String>,
    json_hex: Option<String>,
    fatal: bool,
    error_result_id: Value,
}

#[derive(Deserialize)]
struct ResponseCase {
    name: String,
    json: String,
    results: Vec<ExpectedResult>,
}

#[derive(Deserialize)]
struct ExpectedResult {
    id_json: String,
    data: Value,
    error: Option<ExpectedCondition>,
    warnings: Vec<ExpectedCondition>,
}

#[derive(Deserialize)]
struct ExpectedCondition {
    message: String,
    code: Value,
    data: Value,
}

#[derive(Deserialize)]
struct InvalidResponseCase {
    name: String,
    json: String,
}

#[derive(Deserialize)]
struct ClientCase {
    name: String,
    in_flight: Vec<Vec<Value>>,
    response: String,
    expect: String,
}

#[derive(Deserialize)]
struct EdgeCase {
    name: String,
    json: String,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/messages.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/messages.json is readable");
    serde_json::from_str(&text).expect("messages.json parses")
}

fn id(json: &str) -> Option<Id> {
    Id::from_json(json).expect("vector id is valid JSON")
}

fn value(raw: &RawJson) -> Value {
    raw.deserialize().expect("raw JSON parses")
}

fn assert_condition(case: &str, actual: &Condition, expected: &ExpectedCondition) {
    assert_eq!(actual.message, expected.message, "{case}: message");
    assert_eq!(actual.code, expected.code, "{case}: code");
    assert_eq!(actual.data, expected.data, "{case}: data");
}

fn echo_registry() -> Registry {
    Registry::new().with(Service::new("Test").method(
        "echo",
        "Returns its argument.",
        |(x,): (RawJson,)| async move { Ok(x) },
    ))
}

fn respond(registry: &Registry, payload: &[u8]) -> Option<Vec<CallResult>> {
    let calls = wire::parse_request(payload).expect("not fatal");
    let response = futures::executor::block_on(registry.respond(calls, Arc::new(Peer::default())))?;
    Some(wire::parse_response(&response).expect("the server writes valid responses"))
}

#[test]
fn request_vectors_parse_to_their_calls() {
    for case in vectors().requests {
        let calls = wire::parse_request(case.json.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(calls.len(), case.calls.len(), "{}: call count", case.name);
        for (actual, expected) in calls.iter().zip(&case.calls) {
            let actual = actual
                .as_ref()
                .unwrap_or_else(|e| panic!("{}: invalid call {e:?}", case.name));
            assert_eq!(actual.service, expected.service, "{}", case.name);
            assert_eq!(actual.method, expected.method, "{}", case.name);
            assert_eq!(actual.id, id(&expected.id_json), "{}: id", case.name);
            assert_eq!(
                actual.is_notification(),
                expected.notification,
                "{}",
                case.name
            );
            assert_eq!(value(&actual.args), expected.args, "{}: args", case.name);
        }
    }
}

#[test]
fn request_ids_are_echoed_back_exactly() {
    let registry = echo_registry();
    for case in vectors().requests {
        let echoed_calls: Vec<&ExpectedCall> = case
            .calls
            .iter()
            .filter(|c| !c.notification && c.service == "Test" && c.method == "echo")
            .collect();
        if echoed_calls.len() != case.calls.len() || echoed_calls.is_empty() {
            continue;
        }
        let results = respond(&registry, case.json.as_bytes()).expect("calls get results");
        for (result, expected) in results.iter().zip(echoed_calls) {
            assert_eq!(
                result.id.to_json(),
                id(&expected.id_json).expect("call").to_json(),
                "{}",
                case.name
            );
            match expected.args.as_array().map(Vec::as_slice) {
                Some([arg]) => assert_eq!(
                    &value(result.outcome.as_ref().expect("echo succeeds")),
                    arg,
                    "{}",
                    case.name
                ),
                _ => {
                    let error = result
                        .outcome
                        .as_ref()
                        .expect_err("echo takes exactly one argument");
                    assert_eq!(error.code, "invalid-arguments", "{}", case.name);
                }
            }
        }
    }
}

#[test]
fn invalid_request_vectors_are_fatal_or_answered_with_an_error() {
    let registry = echo_registry();
    for case in vectors().invalid_requests {
        let payload = match (&case.json, &case.json_hex) {
            (Some(json), _) => json.as_bytes().to_vec(),
            (None, Some(hex)) => hex::decode(hex).expect("hex"),
            (None, None) => panic!("{}: no payload", case.name),
        };
        let parsed = wire::parse_request(&payload);
        if case.fatal {
            assert!(
                parsed.is_err(),
                "{}: must be connection-fatal, got {parsed:?}",
                case.name
            );
            continue;
        }
        let calls = parsed.unwrap_or_else(|e| panic!("{}: must not be fatal: {e}", case.name));
        assert!(
            calls.iter().all(Result::is_err),
            "{}: the call is invalid",
            case.name
        );
        let expected_id = id(&case.error_result_id.to_string());
        let results = respond(&registry, &payload);
        match expected_id {
            None => assert!(
                results.is_none(),
                "{}: an invalid notification gets no answer",
                case.name
            ),
            Some(expected_id) => {
                let results =
                    results.unwrap_or_else(|| panic!("{}: expected an error result", case.name));
                assert_eq!(results.len(), 1, "{}", case.name);
                assert_eq!(results[0].id, expected_id, "{}", case.name);
                let error = results[0].outcome.as_ref().expect_err("an error result");
                assert_eq!(error.code, "invalid-call", "{}", case.name);
            }
        }
    }
}

#[test]
fn response_vectors_parse_to_their_results() {
    for case in vectors().responses {
        let results = wire::parse_response(case.json.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(results.len(), case.results.len(), "{}", case.name);
        for (actual, expected) in results.iter().zip(&case.results) {
            assert_eq!(
                Some(actual.id.clone()),
                id(&expected.id_json),
                "{}: id",
                case.name
            );
            match (&actual.outcome, &expected.error) {
                (Ok(data), None) => assert_eq!(value(data), expected.data, "{}: data", case.name),
                (Err(actual), Some(expected)) => assert_condition(&case.name, actual, expected),
                (outcome, _) => panic!("{}: unexpected outcome {outcome:?}", case.name),
            }
            assert_eq!(
                actual.warnings.len(),
                expected.warnings.len(),
                "{}",
                case.name
            );
            for (a, e) in actual.warnings.iter().zip(&expected.warnings) {
                assert_condition(&case.name, a, e);
            }
        }
    }
}

#[test]
fn written_results_read_back_the_same() {
    for case in vectors().responses {
        let results = wire::parse_response(case.json.as_bytes()).expect("valid");
        let mut written = Vec::new();
        wire::write_response(&results, &mut written).expect("writes");
        let text = String::from_utf8(written.clone()).expect("UTF-8");
        assert!(
            !text.contains(":null"),
            "{}: null-valued property written: {text}",
            case.name
        );
        assert_eq!(
            wire::parse_response(&written).expect("re-reads"),
            results,
            "{}",
            case.name
        );
    }
}

#[test]
fn invalid_response_vectors_are_protocol_errors() {
    for case in vectors().invalid_responses {
        let mut core = ClientCore::new();
        core.insert_in_flight(vec![Id::from(1)], ())
            .expect("fresh id");
        let outcome = core.handle_response(case.json.as_bytes());
        assert!(outcome.is_err(), "{}: must be a protocol error", case.name);
    }
}

#[test]
fn client_case_vectors_match_results_to_calls_in_flight() {
    for case in vectors().client_cases {
        let mut core = ClientCore::new();
        for request in &case.in_flight {
            core.insert_in_flight(
                request
                    .iter()
                    .map(|v| id(&v.to_string()).expect("non-null"))
                    .collect(),
                (),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        }
        let outcome = core.handle_response(case.response.as_bytes());
        match case.expect.as_str() {
            "ok" => {
                outcome.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                assert!(
                    core.poll_completion().is_some(),
                    "{}: a request completes",
                    case.name
                );
            }
            "protocol-error" => {
                assert!(outcome.is_err(), "{}: must be a protocol error", case.name)
            }
            other => panic!("{}: unknown expectation {other}", case.name),
        }
    }
}

fn edge(name: &str) -> EdgeCase {
    vectors()
        .edge_cases
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("edge case {name:?} is in messages.json"))
}

fn single_call(json: &str) -> Result<wire::Call, wire::InvalidCall> {
    let mut calls = wire::parse_request(json.as_bytes()).expect("not fatal");
    assert_eq!(calls.len(), 1);
    calls.remove(0)
}

#[test]
fn edge_absent_or_null_args_read_as_empty_array() {
    for name in ["Args absent", "Args null"] {
        let call = single_call(&edge(name).json).expect("valid call");
        assert_eq!(call.args.as_str(), "[]", "{name}");
    }
}

#[test]
fn edge_false_id_is_a_call_not_a_notification() {
    let call = single_call(&edge("id false").json).expect("valid call");
    assert_eq!(call.id, id("false"));
    let results = respond(&echo_registry(), edge("id false").json.as_bytes()).expect("answered");
    assert_eq!(results[0].id.to_json(), "false");
}

#[test]
fn edge_unknown_properties_are_ignored() {
    let call = single_call(&edge("unknown extra property").json).expect("valid call");
    assert_eq!(
        (call.service.as_str(), call.method.as_str()),
        ("Test", "echo")
    );
}

#[test]
fn edge_non_ascii_case_variant_is_not_service() {
    let invalid =
        single_call(&edge("non-ASCII case variant of a key").json).expect_err("no Service");
    assert_eq!(invalid.id, Some(Id::from(1)));
}

#[test]
fn edge_keys_differing_in_case_inside_args_are_user_data() {
    let results = respond(
        &echo_registry(),
        edge("keys differing in case inside Args").json.as_bytes(),
    )
    .expect("answered");
    let data = value(results[0].outcome.as_ref().expect("echo succeeds"));
    assert_eq!(data, serde_json::json!({"a": 1, "A": 2}));
}

#[test]
fn edge_float_id_does_not_match_integer_id() {
    let mut core = ClientCore::new();
    core.insert_in_flight(vec![Id::from(1)], ())
        .expect("fresh id");
    let err = core
        .handle_response(edge("id 1.0 answered for id 1").json.as_bytes())
        .expect_err("1.0 is not 1");
    assert!(matches!(err, ProtocolError::UnknownId(_)), "{err}");
}

#[test]
fn every_edge_case_is_covered() {
    let covered = [
        "Args absent",
        "Args null",
        "id false",
        "unknown extra property",
        "non-ASCII case variant of a key",
        "keys differing in case inside Args",
        "id 1.0 answered for id 1",
    ];
    for case in vectors().edge_cases {
        assert!(
            covered.contains(&case.name.as_str()),
            "edge case {:?} has no test",
            case.name
        );
    }
}

#[test]
fn a_duplicate_id_in_flight_is_refused_not_overwritten() {
    let mut core = ClientCore::new();
    let first = core
        .insert_in_flight(vec![Id::from(1)], ())
        .expect("fresh id");
    let err = core
        .insert_in_flight(vec![Id::from(2), Id::from(1)], ())
        .expect_err("id 1 is in flight");
    assert!(
        matches!(err, RequestError::DuplicateId(ref id) if *id == Id::from(1)),
        "{err}"
    );
    assert_eq!(
        core.in_flight(),
        1,
        "the refused request left nothing behind"
    );
    core.handle_response(br#"[{"id":1,"data":0}]"#)
        .expect("answers the first request");
    assert_eq!(core.poll_completion().expect("complete").request, first);
    core.insert_in_flight(vec![Id::from(2)], ())
        .expect("id 2 was never registered");
}
