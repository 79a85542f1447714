//! Requests and responses on the wire: the one place where call, result and
//! condition objects are read and written.
//!
//! serde cannot match property names case-insensitively, so the visitors
//! here are written by hand: every property name is compared under ASCII
//! case folding (`Id`, `id`, `ID` are one property; `ſervice` is not
//! `service`), and an object holding the same property twice is rejected.
//! The rule stops at `Args` and `Data`: those are the application's values.

use std::fmt;
use std::str;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::condition::Condition;
use crate::error::MessageError;
use crate::id::Id;
use crate::json::RawJson;

/// One call object of a request, as a server reads it.
///
/// ```
/// let calls = mtgnet_proto::wire::parse_request(br#"[{"SERVICE":"Test","method":"echo","Args":["x"],"id":2}]"#).unwrap();
/// let call = calls[0].as_ref().unwrap();
/// assert_eq!((call.service.as_str(), call.method.as_str()), ("Test", "echo"));
/// assert_eq!(call.args.as_str(), r#"["x"]"#);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// Service name as sent (matched case-insensitively).
    pub service: String,
    /// Method name as sent (matched case-insensitively).
    pub method: String,
    /// `None` for a notification (null or absent Id).
    pub id: Option<Id>,
    /// The positional arguments: always a JSON array (absent or null read as `[]`).
    pub args: RawJson,
}

impl Call {
    /// Whether no result is expected for this call.
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
}

/// A call object whose Id could be read but which is otherwise invalid.
///
/// A server answers it with an `invalid-call` error result (or drops it when
/// it is a notification); the connection stays open.
///
/// ```
/// use mtgnet_proto::{wire, Id};
///
/// let calls = wire::parse_request(br#"[{"method":"echo","id":3},{"service":"Test","method":"echo","id":4}]"#).unwrap();
/// let invalid = calls[0].as_ref().unwrap_err();
/// assert_eq!(invalid.id, Some(Id::from(3)));
/// assert!(calls[1].is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCall {
    /// The call's Id; `None` for a notification.
    pub id: Option<Id>,
    /// What is wrong with it.
    pub reason: String,
}

/// One result object of a response, as a client reads it (and a server writes it).
///
/// ```
/// use mtgnet_proto::{wire, Condition, Id, RawJson};
///
/// let result = wire::CallResult {
///     id: Id::from(1),
///     outcome: Err(Condition::new(42, "boom")),
///     warnings: vec![],
/// };
/// let mut out = Vec::new();
/// wire::write_response(std::slice::from_ref(&result), &mut out).unwrap();
/// assert_eq!(out, br#"[{"id":1,"error":{"message":"boom","code":42}}]"#);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CallResult {
    /// The Id of the call this answers.
    pub id: Id,
    /// The returned data, or the error condition (which wins over data).
    pub outcome: Result<RawJson, Condition>,
    /// Conditions that did not stop the call.
    pub warnings: Vec<Condition>,
}

/// A call or notification a client is about to send.
///
/// It borrows everything, so writing a request copies nothing but the
/// output bytes.
///
/// ```
/// use mtgnet_proto::wire::{self, OutgoingCall};
/// use mtgnet_proto::{Id, RawJson};
///
/// let id = Id::from(1);
/// let args = RawJson::from_serialize(&("hi",)).unwrap();
/// let calls = [
///     OutgoingCall { service: "Test", method: "echo", id: Some(&id), args: &args },
///     OutgoingCall { service: "Log", method: "write", id: None, args: &args },
/// ];
/// let mut out = Vec::new();
/// wire::write_request(&calls, &mut out).unwrap();
/// assert_eq!(
///     out,
///     br#"[{"service":"Test","method":"echo","args":["hi"],"id":1},{"service":"Log","method":"write","args":["hi"]}]"#,
/// );
/// ```
#[derive(Clone, Debug)]
pub struct OutgoingCall<'a> {
    /// Service name.
    pub service: &'a str,
    /// Method name.
    pub method: &'a str,
    /// `None` for a notification.
    pub id: Option<&'a Id>,
    /// Arguments; must be a JSON array.
    pub args: &'a RawJson,
}

// ---------------------------------------------------------------------------
// Property names

/// Which property of a call, result or condition object a key names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Property {
    Service,
    Method,
    Id,
    Args,
    Data,
    Error,
    Warnings,
    Message,
    Code,
    Other,
}

const PROPERTIES: [(&str, Property); 9] = [
    ("service", Property::Service),
    ("method", Property::Method),
    ("id", Property::Id),
    ("args", Property::Args),
    ("data", Property::Data),
    ("error", Property::Error),
    ("warnings", Property::Warnings),
    ("message", Property::Message),
    ("code", Property::Code),
];

impl Property {
    /// ASCII-only case folding: `eq_ignore_ascii_case` never folds `ſ` to `s`.
    fn of(key: &str) -> Property {
        PROPERTIES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map_or(Property::Other, |&(_, p)| p)
    }

    fn name(self) -> &'static str {
        PROPERTIES
            .iter()
            .find(|&&(_, p)| p == self)
            .map_or("(other)", |&(name, _)| name)
    }
}

/// Reads a map key straight into a [`Property`] without allocating.
struct PropertySeed;

impl<'de> DeserializeSeed<'de> for PropertySeed {
    type Value = Property;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Property, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for PropertySeed {
    type Value = Property;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Property, E> {
        Ok(Property::of(key))
    }
}

/// Tracks which properties an object has set, to reject duplicates.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    /// Records `p`; `false` when it was already present. `Other` is never a duplicate.
    fn insert(&mut self, p: Property) -> bool {
        if p == Property::Other {
            return true;
        }
        let bit = 1u16 << (p as u16);
        let fresh = self.0 & bit == 0;
        self.0 |= bit;
        fresh
    }
}

// ---------------------------------------------------------------------------
// Requests

/// Parses a request payload: one entry per call object, `Err` for the
/// invalid ones whose Id could still be read.
///
/// # Errors
///
/// Everything PROTOCOL.md section 4 makes connection-fatal: invalid UTF-8, a
/// byte-order mark, invalid JSON, JSON that is not an array, an element that
/// is not an object, or a call object with two Id properties.
pub fn parse_request(payload: &[u8]) -> Result<Vec<Result<Call, InvalidCall>>, MessageError> {
    let text = message_text(payload)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let calls = de
        .deserialize_seq(RequestVisitor)
        .map_err(MessageError::from_json)?;
    de.end().map_err(MessageError::from_json)?;
    Ok(calls)
}

/// Checks the encoding rules of section 3 before any JSON parsing.
fn message_text(payload: &[u8]) -> Result<&str, MessageError> {
    if payload.starts_with(b"\xEF\xBB\xBF") {
        return Err(MessageError::ByteOrderMark);
    }
    str::from_utf8(payload).map_err(MessageError::Utf8)
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Vec<Result<Call, InvalidCall>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request: an array of call objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut calls = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
        while let Some(call) = seq.next_element_seed(CallSeed)? {
            calls.push(call);
        }
        Ok(calls)
    }
}

struct CallSeed;

impl<'de> DeserializeSeed<'de> for CallSeed {
    type Value = Result<Call, InvalidCall>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CallSeed {
    type Value = Result<Call, InvalidCall>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a call object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = Seen::default();
        let mut id = None;
        let mut service = None;
        let mut method = None;
        let mut args = None;
        // The first problem found; reading goes on so that the Id, wherever
        // it sits in the object, can still be recovered.
        let mut problem: Option<String> = None;
        while let Some(property) = map.next_key_seed(PropertySeed)? {
            if !seen.insert(property) {
                if property == Property::Id {
                    return Err(de::Error::custom("a call object has two Id properties"));
                }
                problem.get_or_insert_with(|| format!("two {} properties", property.name()));
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match property {
                Property::Id => {
                    let raw = map.next_value::<Box<RawValue>>()?;
                    id = match Id::from_raw(&raw) {
                        Ok(id) => id,
                        // Valid JSON that no Rust string can hold (a lone
                        // surrogate escape): the Id is still readable, so it
                        // is echoed exactly as written with an error.
                        Err(_) => {
                            problem.get_or_insert_with(|| {
                                format!("the Id is a string that is {NOT_UNICODE}")
                            });
                            Some(Id::verbatim(&raw))
                        }
                    };
                }
                Property::Service => service = string_property(&mut map, property, &mut problem)?,
                Property::Method => method = string_property(&mut map, property, &mut problem)?,
                Property::Args => {
                    let raw = map.next_value::<Box<RawValue>>()?;
                    match raw.get().as_bytes().first() {
                        Some(b'[') => args = Some(RawJson::from_raw(raw)),
                        Some(b'n') => {}
                        _ => {
                            problem.get_or_insert_with(|| "Args is not an array".to_owned());
                        }
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if problem.is_none() {
            if service.is_none() {
                problem = Some("the call has no Service".to_owned());
            } else if method.is_none() {
                problem = Some("the call has no Method".to_owned());
            }
        }
        Ok(match (problem, service, method) {
            (None, Some(service), Some(method)) => Ok(Call {
                service,
                method,
                id,
                args: args.unwrap_or_else(RawJson::empty_array),
            }),
            (problem, ..) => Err(InvalidCall {
                id,
                reason: problem.unwrap_or_default(),
            }),
        })
    }
}

/// Reads a property that must be a string; anything else is recorded as the problem.
///
/// Read raw first: a string holding a lone surrogate escape (`"\ud800"`) is
/// valid JSON that serde_json refuses to unescape, and it must cost this one
/// call, not the connection (PROTOCOL.md section 4).
fn string_property<'de, A: MapAccess<'de>>(
    map: &mut A,
    property: Property,
    problem: &mut Option<String>,
) -> Result<Option<String>, A::Error> {
    let raw = map.next_value::<&RawValue>()?;
    if !raw.get().starts_with('"') {
        problem.get_or_insert_with(|| format!("{} is not a string", property.name()));
        return Ok(None);
    }
    match serde_json::from_str::<String>(raw.get()) {
        Ok(s) => Ok(Some(s)),
        Err(_) => {
            problem.get_or_insert_with(|| format!("{} is {NOT_UNICODE}", property.name()));
            Ok(None)
        }
    }
}

/// Why a JSON string cannot be read as text.
const NOT_UNICODE: &str = "not valid Unicode (a lone surrogate escape)";

/// Writes a request: an array of call objects with lower-case property
/// names, `args` always present, `id` omitted for notifications.
///
/// # Errors
///
/// Fails only if writing JSON fails, which cannot happen for a `Vec`.
pub fn write_request(
    calls: &[OutgoingCall<'_>],
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, calls)
}

impl Serialize for OutgoingCall<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3 + usize::from(self.id.is_some())))?;
        map.serialize_entry("service", self.service)?;
        map.serialize_entry("method", self.method)?;
        map.serialize_entry("args", self.args)?;
        if let Some(id) = self.id {
            map.serialize_entry("id", id)?;
        }
        map.end()
    }
}

// ---------------------------------------------------------------------------
// Responses

/// Parses a response payload into its results.
///
/// This checks the shape only; whether the results match calls in flight is
/// the client's business ([`crate::client::ClientCore`]).
///
/// # Errors
///
/// Invalid UTF-8, a byte-order mark, invalid JSON, not an array, an empty
/// array, an element that is not a result object, a result without a
/// (non-null) Id, a duplicate property, an Error that is not a condition
/// object, Warnings that are not an array of them.
pub fn parse_response(payload: &[u8]) -> Result<Vec<CallResult>, MessageError> {
    let text = message_text(payload)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let results = de
        .deserialize_seq(ResponseVisitor)
        .map_err(MessageError::from_json)?;
    de.end().map_err(MessageError::from_json)?;
    if results.is_empty() {
        return Err(MessageError::EmptyResponse);
    }
    Ok(results)
}

struct ResponseVisitor;

impl<'de> Visitor<'de> for ResponseVisitor {
    type Value = Vec<CallResult>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a response: an array of result objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut results = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
        while let Some(result) = seq.next_element_seed(ResultSeed)? {
            results.push(result);
        }
        Ok(results)
    }
}

struct ResultSeed;

impl<'de> DeserializeSeed<'de> for ResultSeed {
    type Value = CallResult;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<CallResult, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed {
    type Value = CallResult;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CallResult, A::Error> {
        let mut seen = Seen::default();
        let mut id = None;
        let mut data = None;
        let mut error = None;
        let mut warnings = Vec::new();
        while let Some(property) = map.next_key_seed(PropertySeed)? {
            if !seen.insert(property) {
                return Err(de::Error::custom(format_args!(
                    "a result object has two {} properties",
                    property.name()
                )));
            }
            match property {
                Property::Id => {
                    let raw = map.next_value::<Box<RawValue>>()?;
                    id = Id::from_raw(&raw).map_err(de::Error::custom)?;
                }
                Property::Data => {
                    data = Some(RawJson::from_raw(map.next_value::<Box<RawValue>>()?))
                }
                Property::Error => error = map.next_value_seed(OptionalSeed(ConditionSeed))?,
                Property::Warnings => {
                    warnings = map
                        .next_value_seed(OptionalSeed(ConditionListSeed))?
                        .unwrap_or_default();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let id = id.ok_or_else(|| de::Error::custom("a result object has no (non-null) Id"))?;
        let outcome = match error {
            Some(condition) => Err(condition),
            None => Ok(data.unwrap_or_else(RawJson::null)),
        };
        Ok(CallResult {
            id,
            outcome,
            warnings,
        })
    }
}

/// `null` or the value `T` reads.
struct OptionalSeed<T>(T);

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for OptionalSeed<T> {
    type Value = Option<T::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, T: DeserializeSeed<'de>> Visitor<'de> for OptionalSeed<T> {
    type Value = Option<T::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or a condition")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

struct ConditionListSeed;

impl<'de> DeserializeSeed<'de> for ConditionListSeed {
    type Value = Vec<Condition>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ConditionListSeed {
    type Value = Vec<Condition>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of condition objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut conditions = Vec::new();
        while let Some(condition) = seq.next_element_seed(ConditionSeed)? {
            conditions.push(condition);
        }
        Ok(conditions)
    }
}

struct ConditionSeed;

impl<'de> DeserializeSeed<'de> for ConditionSeed {
    type Value = Condition;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Condition, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ConditionSeed {
    type Value = Condition;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a condition object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Condition, A::Error> {
        let mut seen = Seen::default();
        let mut condition = Condition::new(Value::Null, String::new());
        while let Some(property) = map.next_key_seed(PropertySeed)? {
            if !seen.insert(property) {
                return Err(de::Error::custom(format_args!(
                    "a condition object has two {} properties",
                    property.name()
                )));
            }
            match property {
                // Lenient: a peer that writes a non-string message still gets
                // its text through, as JSON.
                Property::Message => {
                    condition.message = match map.next_value::<Value>()? {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    }
                }
                Property::Code => condition.code = map.next_value()?,
                Property::Data => condition.data = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(condition)
    }
}

/// The response payload for `results`, or `None` when there are none (a
/// request of only notifications gets no response).
pub(crate) fn response_payload(results: &[CallResult]) -> Option<Vec<u8>> {
    if results.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(64 * results.len());
    match write_response(results, &mut out) {
        Ok(()) => Some(out),
        Err(e) => {
            tracing::error!(error = %e, "writing a response failed");
            None
        }
    }
}

/// Writes a response: one result object per entry, with no property whose
/// value would be null (the Lisp reader rejects `"error": null`), so a
/// success is `{"id":..,"data":..}` (data omitted when null) and a failure
/// `{"id":..,"error":{..}}`; `warnings` only when there are some.
///
/// # Errors
///
/// Fails only if writing JSON fails, which cannot happen for a `Vec`.
pub fn write_response(results: &[CallResult], out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, results)
}

impl Serialize for CallResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        match &self.outcome {
            Ok(data) if data.is_null() => {}
            Ok(data) => map.serialize_entry("data", data)?,
            Err(condition) => map.serialize_entry("error", condition)?,
        }
        if !self.warnings.is_empty() {
            map.serialize_entry("warnings", &self.warnings)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_folding_is_ascii_only() {
        assert!(Property::of("SeRvIcE") == Property::Service);
        assert!(Property::of("\u{17f}ervice") == Property::Other);
        assert!(Property::of("ID") == Property::Id);
    }

    #[test]
    fn invalid_call_keeps_id_written_after_the_problem() {
        let calls = parse_request(br#"[{"service":"A","Service":"B","method":"m","id":5}]"#)
            .expect("not fatal");
        let invalid = calls[0].as_ref().expect_err("invalid");
        assert_eq!(invalid.id, Some(Id::from(5)));
        assert_eq!(invalid.reason, "two service properties");
    }

    #[test]
    fn lone_surrogate_in_service_or_method_makes_only_that_call_invalid() {
        let calls = parse_request(
            br#"[{"service":"\ud800","method":"m","id":1},{"service":"S","method":"\udfff x","id":2},{"service":"S","method":"m","id":3}]"#,
        )
        .expect("valid JSON is not fatal");
        for (entry, id, reason) in [
            (
                &calls[0],
                1,
                "service is not valid Unicode (a lone surrogate escape)",
            ),
            (
                &calls[1],
                2,
                "method is not valid Unicode (a lone surrogate escape)",
            ),
        ] {
            let invalid = entry.as_ref().expect_err("invalid");
            assert_eq!(
                (invalid.id.clone(), invalid.reason.as_str()),
                (Some(Id::from(id)), reason)
            );
        }
        assert!(calls[2].is_ok());
    }

    #[test]
    fn lone_surrogate_string_id_is_echoed_as_written_with_an_invalid_call() {
        let calls = parse_request(br#"[{"service":"S","method":"m","id":"a\ud800"}]"#)
            .expect("valid JSON is not fatal");
        let invalid = calls[0].as_ref().expect_err("invalid");
        let id = invalid.id.as_ref().expect("the id is kept");
        assert_eq!(id.to_json(), r#""a\ud800""#);
        assert_eq!(
            invalid.reason,
            "the Id is a string that is not valid Unicode (a lone surrogate escape)"
        );
    }

    #[test]
    fn outgoing_notification_omits_id() {
        let args = RawJson::empty_array();
        let mut out = Vec::new();
        let call = OutgoingCall {
            service: "S",
            method: "m",
            id: None,
            args: &args,
        };
        write_request(&[call], &mut out).expect("writes");
        assert_eq!(out, br#"[{"service":"S","method":"m","args":[]}]"#);
    }

    #[test]
    fn null_data_is_omitted_and_warnings_written_when_present() {
        let result = CallResult {
            id: Id::from("x"),
            outcome: Ok(RawJson::null()),
            warnings: vec![Condition::new(7, "careful")],
        };
        let mut out = Vec::new();
        write_response(&[result], &mut out).expect("writes");
        assert_eq!(
            out,
            br#"[{"id":"x","warnings":[{"message":"careful","code":7}]}]"#
        );
    }
}
