//! `mtgnet demo`.

use crate::args::DemoArgs;

/// Runs the demo.
pub(crate) fn run(_args: &DemoArgs) -> anyhow::Result<()> {
    Ok(())
}
