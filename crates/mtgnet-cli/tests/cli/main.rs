//! End-to-end tests of the `mtgnet` binary: real processes on `127.0.0.1:0`.

mod bench;
mod call;
mod demo;
mod hostile;

mod keys;
mod memory;
mod metrics;
mod proxy;
mod serve;
mod unix;
mod util;
