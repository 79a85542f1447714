//! Call ids, kept as the exact JSON value the peer wrote.
//!
//! The deployed peers send integers up to 2^63 (and a server must echo
//! anything, integers beyond 2^64 included), so an [`Id`] never passes through
//! `f64`: integers in the `i64`/`u64` range are kept as integers, strings as
//! strings, and every other JSON value as its compact text. Two ids are equal
//! exactly when they are the same JSON value of the same type: `1` is neither
//! `1.0` nor `"1"`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The Id of a call or result: any non-null JSON value, compared exactly.
///
/// ```
/// use mtgnet_proto::Id;
///
/// let id = Id::from(4_611_686_018_427_387_905_i64);
/// assert_eq!(id.to_json(), "4611686018427387905");
/// assert_eq!(Id::from_json("1.0").unwrap(), Some(Id::from_json("1.0").unwrap().unwrap()));
/// assert_ne!(Id::from_json("1.0").unwrap(), Some(Id::from(1)));
/// assert_ne!(Id::from("1"), Id::from(1));
/// assert_eq!(Id::from_json("null").unwrap(), None); // null is "no id": a notification
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Id(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// An integer written in canonical form within `i64::MIN..=u64::MAX`.
    Int(i128),
    /// A JSON string, unescaped.
    Str(Box<str>),
    /// Any other JSON value, as compact JSON text (whitespace outside strings removed).
    Other(Box<str>),
}

impl Id {
    /// Reads an id from JSON text; `Ok(None)` for `null`.
    ///
    /// # Errors
    ///
    /// Fails when `json` is not a single valid JSON value.
    pub fn from_json(json: &str) -> Result<Option<Id>, serde_json::Error> {
        let raw: Box<RawValue> = serde_json::from_str(json)?;
        Id::from_raw(&raw)
    }

    /// Classifies an already-validated raw JSON value; `Ok(None)` for `null`.
    pub(crate) fn from_raw(raw: &RawValue) -> Result<Option<Id>, serde_json::Error> {
        let text = raw.get();
        let repr = match text.as_bytes().first() {
            Some(b'n') => return Ok(None),
            Some(b'"') => Repr::Str(serde_json::from_str::<String>(text)?.into_boxed_str()),
            Some(b'-' | b'0'..=b'9') => match canonical_integer(text) {
                Some(n) => Repr::Int(n),
                None => Repr::Other(text.into()),
            },
            _ => Repr::Other(minify(text).into_boxed_str()),
        };
        Ok(Some(Id(repr)))
    }

    /// Keeps a raw JSON value's text as the id, unparsed: for a string id
    /// that cannot be unescaped (a lone surrogate escape), so that the
    /// error result still carries the Id exactly as the peer wrote it.
    pub(crate) fn verbatim(raw: &RawValue) -> Id {
        Id(Repr::Other(raw.get().into()))
    }

    /// The id as compact JSON text, exactly as it goes on the wire.
    pub fn to_json(&self) -> String {
        match &self.0 {
            Repr::Int(n) => n.to_string(),
            Repr::Str(s) => serde_json::to_string(&**s).unwrap_or_default(),
            Repr::Other(text) => text.to_string(),
        }
    }

    /// The id as an `i64`, when it is an integer in that range.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Int(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// The id as a string slice, when it is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// `Some(n)` when `text` is a JSON integer in canonical form that fits
/// `i64::MIN..=u64::MAX`. `-0` is not canonical: it stays distinct from `0`.
fn canonical_integer(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || text == "-0" {
        return None;
    }
    let n: i128 = text.parse().ok()?;
    (i128::from(i64::MIN)..=i128::from(u64::MAX))
        .contains(&n)
        .then_some(n)
}

/// Removes the whitespace between tokens of valid JSON text, keeping strings intact.
fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Id(Repr::Int(n.into()))
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id(Repr::Int(n.into()))
    }
}

impl From<i32> for Id {
    fn from(n: i32) -> Self {
        Id(Repr::Int(n.into()))
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id(Repr::Str(s.into()))
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Id(Repr::Str(s.into_boxed_str()))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.to_json())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Int(n) => match i64::try_from(*n) {
                Ok(n) => serializer.serialize_i64(n),
                Err(_) => {
                    serializer.serialize_u64(u64::try_from(*n).map_err(serde::ser::Error::custom)?)
                }
            },
            Repr::Str(s) => serializer.serialize_str(s),
            Repr::Other(text) => {
                let raw =
                    RawValue::from_string(text.to_string()).map_err(serde::ser::Error::custom)?;
                raw.serialize(serializer)
            }
        }
    }
}

/// Reads a non-null id. Only works with `serde_json`'s own deserializer,
/// which is the only one this crate uses.
impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Id::from_raw(&raw)
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom("an id cannot be null"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(json: &str) -> Id {
        Id::from_json(json).expect("valid JSON").expect("not null")
    }

    #[test]
    fn integers_beyond_f64_precision_stay_distinct() {
        assert_ne!(id("4611686018427387904"), id("4611686018427387905"));
        assert_eq!(id("18446744073709551617").to_json(), "18446744073709551617");
        assert_eq!(id("-9223372036854775808").as_i64(), Some(i64::MIN));
    }

    #[test]
    fn integer_and_float_and_string_ids_differ() {
        assert_ne!(id("1"), id("1.0"));
        assert_ne!(id("1"), id("\"1\""));
        assert_ne!(id("0"), id("-0"));
    }

    #[test]
    fn object_ids_compare_without_insignificant_whitespace() {
        assert_eq!(id("{ \"a\" : [1, \"x y\"] }"), id("{\"a\":[1,\"x y\"]}"));
        assert_eq!(
            id("{ \"a\" : [1, \"x y\"] }").to_json(),
            "{\"a\":[1,\"x y\"]}"
        );
    }

    #[test]
    fn string_ids_compare_after_unescaping() {
        assert_eq!(id("\"\\u0041\\/\""), Id::from("A/"));
    }

    #[test]
    fn ids_serialize_back_to_the_same_json() {
        for text in [
            "1",
            "-5",
            "18446744073709551615",
            "18446744073709551617",
            "1.5",
            "\"x\"",
            "false",
            "[]",
        ] {
            assert_eq!(serde_json::to_string(&id(text)).expect("serializes"), text);
        }
    }
}
