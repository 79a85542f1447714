//! Typed calls in a [`Batch`]: what the batch builders of
//! [`#[mtgnet::service]`](crate::service) return, usable by hand as well.

use std::marker::PhantomData;
use std::sync::Arc;

use mtgnet_proto::client::Batch;
use mtgnet_proto::wire::CallResult;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::args_json;
use crate::error::{CallError, Error};

/// One call added to a [`Batch`], with the type its result decodes to.
///
/// ```
/// use mtgnet::{demo, Batch, BatchCall, Client, ClientConfig, Registry, Server, ServerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = Server::new(Registry::new().with(demo::test_service()), ServerConfig::plain())?;
/// # let (client_io, server_io) = tokio::io::duplex(64 * 1024);
/// # tokio::spawn(async move { server.serve_connection(server_io, None, mtgnet::Shutdown::new()).await });
/// # let (client, driver) = Client::new(client_io, ClientConfig::plain()).await?;
/// # tokio::spawn(driver);
/// // `client` is connected to a server hosting `mtgnet::demo::test_service()`.
/// let mut batch = Batch::new();
/// let sum = BatchCall::<i64>::push(&mut batch, "Test", "add", (2, 3))?;
/// let word = BatchCall::<String>::push(&mut batch, "Test", "echo", ("hi",))?;
/// let results = client.batch(batch).await?;
/// assert_eq!(sum.result(&results)?, 5);
/// assert_eq!(word.result(&results)?, "hi");
/// # Ok(()) }
/// ```
pub struct BatchCall<T> {
    index: usize,
    result: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> BatchCall<T> {
    /// Adds the call `service.method(args...)` to `batch`.
    ///
    /// # Errors
    ///
    /// [`CallError::Arguments`] when `args` does not serialize to a JSON
    /// array (a tuple, `()` for none); the batch is then unchanged.
    pub fn push<A: Serialize>(
        batch: &mut Batch,
        service: &str,
        method: &str,
        args: A,
    ) -> Result<BatchCall<T>, CallError> {
        let args = args_json(&args)?;
        Ok(BatchCall {
            index: batch.call(service, method, args),
            result: PhantomData,
        })
    }

    /// Its position among the batch's calls, and so in the batch's results.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Reads this call's result from the results of its batch.
    ///
    /// # Errors
    ///
    /// [`CallError::Remote`] when the server answered this call with an
    /// error, [`CallError::Decode`] when the data does not fit `T`, and
    /// [`CallError::Connection`] ([`Error::Closed`]) when `results` holds
    /// no result at this call's position (results of another batch).
    pub fn result(&self, results: &[CallResult]) -> Result<T, CallError> {
        let result = results
            .get(self.index)
            .ok_or_else(|| CallError::Connection(Arc::new(Error::Closed)))?;
        match &result.outcome {
            Ok(data) => data
                .deserialize()
                .map_err(|e| CallError::Decode(Arc::new(e))),
            Err(condition) => Err(CallError::Remote(condition.clone())),
        }
    }
}

impl<T> std::fmt::Debug for BatchCall<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCall")
            .field("index", &self.index)
            .field("result", &std::any::type_name::<T>())
            .finish()
    }
}
