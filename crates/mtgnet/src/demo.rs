//! The `Test` service that `mtgnet serve` hosts: a fixed set of methods
//! other peers and tools use to check interoperability, written with
//! [`#[mtgnet::service]`](crate::service).

use std::time::Duration;

use mtgnet_proto::{Condition, Context, RawJson, Service, codes};

/// Longest `Test.sleep` accepted, so that a client cannot park calls forever.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// Methods for checking that MTGNet peers interoperate.
#[mtgnet::service(name = "Test", version = "1.0")]
pub trait Test {
    /// echo(x) -> x: returns its argument unchanged.
    async fn echo(&self, x: RawJson) -> Result<RawJson, Condition>;
    /// add(a, b) -> a + b: exact for integers, floating point otherwise.
    async fn add(&self, a: RawJson, b: RawJson) -> Result<serde_json::Value, Condition>;
    /// fail() -> always fails with {message: "boom", code: 42}.
    async fn fail(&self) -> Result<(), Condition>;
    /// sleep(ms) -> ms: answers after sleeping ms milliseconds (at most 60000).
    async fn sleep(&self, ms: u64) -> Result<u64, Condition>;
    /// warn(x) -> x, with one warning {message: "careful", code: 7}.
    async fn warn(&self, ctx: &Context, x: RawJson) -> Result<RawJson, Condition>;
}

/// The methods of the `Test` service `mtgnet serve` hosts (no state),
/// behind [`TestServer`]; the contract is the trait [`Test`]:
///
/// * `echo(x)` → `x`, byte for byte (numbers keep every digit);
/// * `add(a, b)` → `a + b`, exact for integers (up to 128 bits), else as floats;
/// * `fail()` → error `{message: "boom", code: 42}`;
/// * `sleep(ms)` → `ms`, after sleeping `ms` milliseconds (at most [`MAX_SLEEP_MS`]);
/// * `warn(x)` → `x`, with one warning `{message: "careful", code: 7}`.
///
/// ```
/// use mtgnet::demo::{TestClient, TestMethods, TestServer};
/// use mtgnet::{Client, ClientConfig, RawJson, Registry, Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::new(Registry::new().with(TestServer::new(TestMethods)), ServerConfig::plain())?;
/// let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// tokio::spawn(async move { server.serve_connection(server_io, None, mtgnet::Shutdown::new()).await });
/// let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
/// tokio::spawn(driver);
///
/// let test = TestClient::new(client);
/// let big = RawJson::from_string("123456789012345678901234567890".to_owned())?;
/// assert_eq!(test.echo(big.clone()).await?, big);
/// assert_eq!(test.fail().await.unwrap_err().remote().map(|c| c.code.clone()), Some(42.into()));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TestMethods;

impl Test for TestMethods {
    async fn echo(&self, x: RawJson) -> Result<RawJson, Condition> {
        Ok(x)
    }

    async fn add(&self, a: RawJson, b: RawJson) -> Result<serde_json::Value, Condition> {
        add(&a, &b)
    }

    async fn fail(&self) -> Result<(), Condition> {
        Err(Condition::new(42, "boom"))
    }

    async fn sleep(&self, ms: u64) -> Result<u64, Condition> {
        if ms > MAX_SLEEP_MS {
            return Err(Condition::new(
                codes::INVALID_ARGUMENTS,
                format!("sleep takes at most {MAX_SLEEP_MS} ms"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }

    async fn warn(&self, ctx: &Context, x: RawJson) -> Result<RawJson, Condition> {
        ctx.warn(Condition::new(7, "careful"));
        Ok(x)
    }
}

/// The `Test` service as `mtgnet serve` hosts it: [`TestMethods`] behind
/// [`TestServer`], with the product and author `describeService` reports.
///
/// ```
/// let registry = mtgnet::Registry::new().with(mtgnet::demo::test_service());
/// assert!(registry.service("test").is_some());
/// ```
pub fn test_service() -> Service {
    Service::from(TestServer::new(TestMethods))
        .product("mtgnet test service")
        .author("the mtgnet developers")
}

/// A JSON number as read for `add`: an exact integer when written as one.
enum Number {
    Int(i128),
    Float(f64),
}

fn number(raw: &RawJson) -> Result<Number, Condition> {
    let text = raw.as_str();
    if let Ok(n) = text.parse::<i128>() {
        return Ok(Number::Int(n));
    }
    match raw.deserialize::<serde_json::Value>() {
        Ok(serde_json::Value::Number(n)) => n
            .as_f64()
            .map(Number::Float)
            .ok_or_else(|| Condition::new(codes::INVALID_ARGUMENTS, "add takes two numbers")),
        _ => Err(Condition::new(
            codes::INVALID_ARGUMENTS,
            "add takes two numbers",
        )),
    }
}

fn add(a: &RawJson, b: &RawJson) -> Result<serde_json::Value, Condition> {
    let as_float = |n: Number| match n {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    };
    let sum = match (number(a)?, number(b)?) {
        (Number::Int(x), Number::Int(y)) => {
            match x.checked_add(y).and_then(|s| i64::try_from(s).ok()) {
                Some(s) => return Ok(s.into()),
                None => match x.checked_add(y).and_then(|s| u64::try_from(s).ok()) {
                    Some(s) => return Ok(s.into()),
                    None => (x as f64) + (y as f64),
                },
            }
        }
        (x, y) => as_float(x) + as_float(y),
    };
    serde_json::Number::from_f64(sum)
        .map(serde_json::Value::Number)
        .ok_or_else(|| Condition::new(codes::INVALID_ARGUMENTS, "the sum is not a finite number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawJson {
        RawJson::from_string(text.to_owned()).expect("valid JSON")
    }

    #[test]
    fn add_is_exact_for_large_integers() {
        let sum = add(&raw("4611686018427387904"), &raw("4611686018427387905")).expect("adds");
        assert_eq!(sum.to_string(), "9223372036854775809");
    }

    #[test]
    fn add_mixes_integers_and_floats() {
        assert_eq!(
            add(&raw("1"), &raw("0.5")).expect("adds").to_string(),
            "1.5"
        );
    }

    #[test]
    fn add_rejects_non_numbers() {
        let err = add(&raw("\"1\""), &raw("2")).expect_err("a string is no number");
        assert_eq!(err.code, codes::INVALID_ARGUMENTS);
    }
}
