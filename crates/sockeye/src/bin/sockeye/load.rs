//! `sockeye load`.

/// Options of `sockeye load`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {}

pub(crate) fn run(_args: LoadArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("not yet".into())
}
