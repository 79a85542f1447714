//! What a load run found, as JSON or a readable summary.

use std::io::Write;

use serde::Serialize;

use super::{Kind, LoadSettings};

/// The result of a load run; also its JSON form.
#[derive(Debug, Serialize)]
pub(super) struct LoadReport {
    pub(super) mode: &'static str,
    /// `"v1"` or `"v2"`; `null` for plain connections.
    pub(super) encryption: Option<String>,
    pub(super) kind: &'static str,
    pub(super) connections: usize,
    pub(super) in_flight: usize,
    pub(super) payload: usize,
    pub(super) completed: u64,
    pub(super) errors: u64,
    pub(super) seconds: f64,
    pub(super) per_sec: f64,
    /// Request payload bytes echoed per second, in 10^6 bytes.
    pub(super) mb_per_sec: f64,
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) p999_us: f64,
    /// `--baseline`: round trips/s of a raw TCP echo of the same frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) baseline_per_sec: Option<f64>,
    /// `--baseline`: `per_sec` / `baseline_per_sec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) baseline_ratio: Option<f64>,
    /// `--baseline`: the raw echo's median round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) baseline_p50_us: Option<f64>,
    /// Where the server was (for the summary only).
    #[serde(skip)]
    pub(super) server: String,
}

/// Rounds to `decimals` places, for readable JSON numbers.
pub(super) fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

pub(super) fn write_summary(
    out: &mut impl Write,
    report: &LoadReport,
    settings: &LoadSettings,
) -> std::io::Result<()> {
    let unit = match settings.kind {
        Kind::Calls => "calls",
        Kind::Handshakes => "connections",
    };
    writeln!(
        out,
        "mtgnet bench: {}, {} ({})",
        report.kind, report.mode, report.server
    )?;
    match settings.kind {
        Kind::Calls => writeln!(
            out,
            "  load        {} connection{} × {} in flight, Test.echo of {} bytes",
            report.connections,
            if report.connections == 1 { "" } else { "s" },
            report.in_flight,
            report.payload
        )?,
        Kind::Handshakes => writeln!(
            out,
            "  load        {} worker{}, each: connect, {}one Test.echo of {} bytes, close",
            report.connections,
            if report.connections == 1 { "" } else { "s" },
            if report.mode == "plain" {
                ""
            } else {
                "handshake, "
            },
            report.payload
        )?,
    }
    writeln!(
        out,
        "  completed   {} {unit}, {} errors, in {:.2} s",
        report.completed, report.errors, report.seconds
    )?;
    writeln!(
        out,
        "  rate        {:.0} {unit}/s, {:.2} MB/s of echoed payload",
        report.per_sec, report.mb_per_sec
    )?;
    writeln!(
        out,
        "  latency     p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs{}",
        report.p50_us,
        report.p99_us,
        report.p999_us,
        match settings.kind {
            Kind::Calls => " per call",
            Kind::Handshakes => " per connection",
        }
    )?;
    if let (Some(per_sec), Some(ratio), Some(p50)) = (
        report.baseline_per_sec,
        report.baseline_ratio,
        report.baseline_p50_us,
    ) {
        writeln!(
            out,
            "  baseline    {per_sec:.0} round trips/s of a raw TCP echo of the same frames \
             (mtgnet at {ratio:.2}×), p50 {p50:.0} µs"
        )?;
    }
    Ok(())
}
