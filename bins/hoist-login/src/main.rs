//! The `hoist-login` command.

use clap::Parser;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    // TODO: wire the library crates in; each command has its own issue.
    anyhow::bail!("hoist-login is not implemented yet")
}
