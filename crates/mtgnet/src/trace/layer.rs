use tower_layer::Layer;
use tracing::Level;

use super::Traced;

/// Runs every call in a `tracing` span (see [the module](super)): a `tower`
/// layer for [`Registry::layer`](crate::Registry::layer).
///
/// ```
/// use mtgnet::trace::Trace;
/// use mtgnet::{demo, Registry};
///
/// let registry = Registry::new()
///     .with(demo::test_service())
///     .layer(Trace::new().level(tracing::Level::DEBUG));
/// # let _ = registry;
/// ```
#[derive(Clone, Debug)]
pub struct Trace {
    level: Level,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace::new()
    }
}

impl Trace {
    /// Spans at `INFO`.
    pub fn new() -> Trace {
        Trace { level: Level::INFO }
    }

    /// Spans (and their closing events) at `level`.
    #[must_use]
    pub fn level(mut self, level: Level) -> Trace {
        self.level = level;
        self
    }
}

impl<S> Layer<S> for Trace {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced::new(inner, self.level)
    }
}
