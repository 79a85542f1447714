//! `--crypto`: sealing and opening next to raw libsodium.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use mtgnet::encryption::bench::{
    CryptoThroughput, RecordThroughput, crypto_throughput, record_throughput,
};
use serde::Serialize;

use super::CRYPTO_SIZES;
use super::load::end_progress;
use super::report::round;

/// One row of `--crypto --json`.
#[derive(Debug, Serialize)]
pub(super) struct CryptoRow {
    size: usize,
    seal_mb_s: f64,
    raw_seal_mb_s: f64,
    open_mb_s: f64,
    raw_open_mb_s: f64,
}

impl CryptoRow {
    fn new(size: usize, seal: f64, raw_seal: f64, open: f64, raw_open: f64) -> CryptoRow {
        CryptoRow {
            size,
            seal_mb_s: round(seal, 1),
            raw_seal_mb_s: round(raw_seal, 1),
            open_mb_s: round(open, 1),
            raw_open_mb_s: round(raw_open, 1),
        }
    }
}

impl From<&CryptoThroughput> for CryptoRow {
    fn from(t: &CryptoThroughput) -> CryptoRow {
        CryptoRow::new(
            t.size,
            t.seal_mb_s,
            t.raw_seal_mb_s,
            t.open_mb_s,
            t.raw_open_mb_s,
        )
    }
}

impl From<&RecordThroughput> for CryptoRow {
    fn from(t: &RecordThroughput) -> CryptoRow {
        CryptoRow::new(
            t.size,
            t.seal_mb_s,
            t.raw_seal_mb_s,
            t.open_mb_s,
            t.raw_open_mb_s,
        )
    }
}

/// `--crypto`: v1 frames and v2 records sealed and opened next to the raw
/// libsodium calls they are built on, per size, measured in the same run.
pub(super) fn crypto(duration: Duration, json: bool) -> anyhow::Result<()> {
    let budget = duration / (2 * CRYPTO_SIZES.len() as u32);
    let terminal = std::io::stderr().is_terminal();
    let progress = |what: &str, size: usize| {
        if terminal {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(
                stderr,
                "\rbench: sealing and opening {size}-byte {what}\x1b[K"
            );
            let _ = stderr.flush();
        }
    };
    let mut results = Vec::with_capacity(CRYPTO_SIZES.len());
    let mut records = Vec::with_capacity(CRYPTO_SIZES.len());
    for size in CRYPTO_SIZES {
        progress("v1 frames", size);
        results.push(crypto_throughput(size, budget));
        progress("v2 records", size);
        records.push(record_throughput(size, budget));
    }
    end_progress();
    let mut stdout = std::io::stdout().lock();
    if json {
        #[derive(Serialize)]
        struct Crypto {
            crypto: Vec<CryptoRow>,
            v2_records: Vec<CryptoRow>,
        }
        let report = Crypto {
            crypto: results.iter().map(CryptoRow::from).collect(),
            v2_records: records.iter().map(CryptoRow::from).collect(),
        };
        serde_json::to_writer(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        writeln!(
            stdout,
            "mtgnet bench --crypto: sealing and opening frames, MB/s of plaintext (1 MB = 10^6 bytes)"
        )?;
        writeln!(
            stdout,
            "  session = Session::seal_into / open_in_place (nonce, framing); raw = libsodium crypto_box_*_afternm"
        )?;
        writeln!(
            stdout,
            "  {:>9}  {:>10} {:>10} {:>6}   {:>10} {:>10} {:>6}",
            "size", "seal", "raw seal", "ratio", "open", "raw open", "ratio"
        )?;
        let row = |out: &mut dyn Write, t: CryptoRow| {
            writeln!(
                out,
                "  {:>9}  {:>10.1} {:>10.1} {:>6.2}   {:>10.1} {:>10.1} {:>6.2}",
                size_text(t.size),
                t.seal_mb_s,
                t.raw_seal_mb_s,
                t.seal_mb_s / t.raw_seal_mb_s,
                t.open_mb_s,
                t.raw_open_mb_s,
                t.open_mb_s / t.raw_open_mb_s
            )
        };
        for t in &results {
            row(&mut stdout, CryptoRow::from(t))?;
        }
        writeln!(
            stdout,
            "  v2 records = Sealer::seal_framed_into / Opener::open_in_place (flag byte, chunks, framing); raw = libsodium crypto_aead_chacha20poly1305_ietf_*"
        )?;
        for t in &records {
            row(&mut stdout, CryptoRow::from(t))?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// A frame size for people: `64 B`, `1 KiB`, `64 KiB`, `1 MiB`.
pub(super) fn size_text(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        let texts: Vec<String> = CRYPTO_SIZES.iter().map(|&s| size_text(s)).collect();
        assert_eq!(texts, ["64 B", "1 KiB", "64 KiB", "1 MiB"]);
    }
}
