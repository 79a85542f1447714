//! Integration tests of `mtgnet` over real loopback sockets, as one binary.

mod adversarial;
mod allocations;
mod blocking;
mod calls;
mod client;
mod encrypted;
mod layers;
mod load;
mod metrics;
mod proxy;
mod reconnect;
mod runtime;
mod secrets;
mod service;
#[cfg(unix)]
mod unix;
mod util;
mod v2;

#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;
