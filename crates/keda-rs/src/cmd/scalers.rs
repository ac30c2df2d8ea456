//! `keda-rs scalers`: the trigger types this build has, or (`--schema`) their parameter tables in
//! the shape of KEDA's generated `scalers-schema.yaml`, to diff against KEDA's.

use std::io::Write;
use std::process::ExitCode;

use keda_scalers::Registry;

#[derive(clap::Args)]
pub struct Args {
    /// Print every trigger type's parameters (name, default, optional, sources) as YAML.
    #[arg(long)]
    schema: bool,
}

pub fn run(args: &Args) -> ExitCode {
    let registry = Registry::builtin();
    let text = if args.schema {
        let version = format!("keda-rs {}", env!("CARGO_PKG_VERSION"));
        match serde_yaml::to_string(&keda_scalers::schema::schema(&registry, &version)) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("keda-rs scalers: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        registry.trigger_types().map(|t| format!("{t}\n")).collect()
    };
    match std::io::stdout().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keda-rs scalers: {e}");
            ExitCode::FAILURE
        }
    }
}
