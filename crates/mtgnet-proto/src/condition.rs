//! [`Condition`]: the error and warning objects of a result.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// A condition object: why a call failed, or a warning that did not stop it.
///
/// Written with `message` and `code` always present and `data` only when it
/// is not null, which is what the deployed Lisp reader expects.
///
/// ```
/// use mtgnet_proto::Condition;
///
/// let c = Condition::new(42, "boom").with_data(serde_json::json!({"hint": "retry"}));
/// assert_eq!(c.code, 42);
/// assert_eq!(c.to_string(), "42: boom");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Human-readable text.
    pub message: String,
    /// Machine-readable identifier of the condition type (any JSON value).
    pub code: Value,
    /// Extra data; `Value::Null` when absent.
    pub data: Value,
}

impl Condition {
    /// A condition with the given code and message and no data.
    pub fn new(code: impl Into<Value>, message: impl Into<String>) -> Condition {
        Condition {
            message: message.into(),
            code: code.into(),
            data: Value::Null,
        }
    }

    /// Attaches extra data.
    #[must_use]
    pub fn with_data(mut self, data: impl Into<Value>) -> Condition {
        self.data = data.into();
        self
    }

    /// The code as text: a string code bare, any other value as JSON.
    pub fn code_text(&self) -> String {
        match &self.code {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code_text(), self.message)
    }
}

impl std::error::Error for Condition {}

/// A handler whose error type is `Infallible` never fails.
impl From<std::convert::Infallible> for Condition {
    fn from(never: std::convert::Infallible) -> Condition {
        match never {}
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let with_data = !self.data.is_null();
        let mut map = serializer.serialize_map(Some(2 + usize::from(with_data)))?;
        map.serialize_entry("message", &self.message)?;
        map.serialize_entry("code", &self.code)?;
        if with_data {
            map.serialize_entry("data", &self.data)?;
        }
        map.end()
    }
}

/// The error codes this implementation uses for calls it cannot run.
pub mod codes {
    /// No service of that name is hosted.
    pub const UNKNOWN_SERVICE: &str = "unknown-service";
    /// The service has no method of that name.
    pub const UNKNOWN_METHOD: &str = "unknown-method";
    /// The arguments do not fit the method (count or types).
    pub const INVALID_ARGUMENTS: &str = "invalid-arguments";
    /// The call object itself is malformed (no Method, Args not an array, ...).
    pub const INVALID_CALL: &str = "invalid-call";
    /// The handler panicked or its result could not be serialized.
    pub const INTERNAL_ERROR: &str = "internal-error";
    /// The server is shutting down and did not run the call.
    pub const SHUTTING_DOWN: &str = "shutting-down";
    /// The request holds more calls than the server accepts in one request.
    pub const BATCH_TOO_LARGE: &str = "batch-too-large";
    /// The peer may not call this method (an authorization layer refused it).
    pub const NOT_AUTHORIZED: &str = "not-authorized";
}
