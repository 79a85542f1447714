//! Integration tests of `mtgnet` over real loopback sockets, as one binary.

mod adversarial;
mod blocking;
mod calls;
mod client;
mod encrypted;
mod load;
mod runtime;
mod secrets;
mod util;
mod v2;
