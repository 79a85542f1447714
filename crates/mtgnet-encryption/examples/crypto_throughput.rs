//! Prints `bench::crypto_throughput` for the four frame sizes:
//! `cargo run --release -p mtgnet-encryption --example crypto_throughput [budget_ms]`.

use std::time::Duration;

use mtgnet_encryption::bench::crypto_throughput;

fn main() {
    let budget_ms = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    println!(
        "{:>8} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6}",
        "size", "seal MB/s", "raw MB/s", "ratio", "open MB/s", "raw MB/s", "ratio"
    );
    for size in [64, 1024, 64 * 1024, 1024 * 1024] {
        let t = crypto_throughput(size, Duration::from_millis(budget_ms));
        println!(
            "{:>8} {:>10.1} {:>10.1} {:>6.3} {:>10.1} {:>10.1} {:>6.3}",
            t.size,
            t.seal_mb_s,
            t.raw_seal_mb_s,
            t.seal_ratio(),
            t.open_mb_s,
            t.raw_open_mb_s,
            t.open_ratio()
        );
    }
}
