//! [`RawJson`]: a JSON value kept as validated text until someone asks for it.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One JSON value, stored as its (validated) text and parsed only on demand.
///
/// Call arguments and result data travel as `RawJson`: the protocol layer
/// never needs to look inside them, numbers keep their exact digits (no
/// `f64` detour for integers beyond 2^53), and the caller decides which type
/// to read them into.
///
/// ```
/// use mtgnet_proto::RawJson;
///
/// let args = RawJson::from_serialize(&(1, "two")).unwrap();
/// assert_eq!(args.as_str(), r#"[1,"two"]"#);
/// let (a, b): (i64, String) = args.deserialize().unwrap();
/// assert_eq!((a, b.as_str()), (1, "two"));
/// ```
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON `null`.
    pub fn null() -> RawJson {
        RawJson::from_trusted("null")
    }

    /// The empty array `[]`.
    pub fn empty_array() -> RawJson {
        RawJson::from_trusted("[]")
    }

    /// Serializes `value` to JSON.
    ///
    /// # Errors
    ///
    /// Fails when `value`'s `Serialize` implementation fails (for example a
    /// map with non-string keys).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(RawJson)
    }

    /// Validates `text` as one JSON value.
    ///
    /// # Errors
    ///
    /// Fails when `text` is not exactly one valid JSON value.
    pub fn from_string(text: String) -> Result<RawJson, serde_json::Error> {
        RawValue::from_string(text).map(RawJson)
    }

    fn from_trusted(text: &'static str) -> RawJson {
        RawJson(
            RawValue::from_string(text.to_owned())
                .unwrap_or_else(|_| unreachable!("constant JSON")),
        )
    }

    /// Parses the value into `T`.
    ///
    /// # Errors
    ///
    /// Fails when the JSON does not have the shape `T` expects.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The JSON text, without surrounding whitespace.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }

    /// The underlying raw value.
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    pub(crate) fn from_raw(raw: Box<RawValue>) -> RawJson {
        RawJson(raw)
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> Self {
        RawJson(raw)
    }
}

impl PartialEq for RawJson {
    /// Textual equality: the same value written with different spacing or
    /// escapes compares unequal. Use [`RawJson::deserialize`] into
    /// `serde_json::Value` for semantic comparison.
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(RawJson)
    }
}
