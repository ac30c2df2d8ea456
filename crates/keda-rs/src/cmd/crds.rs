//! `keda-rs crds`: the CRDs as YAML, to stdout or one file per CRD.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Write one file per CRD into this folder (as under config/crd/) instead of printing.
    #[arg(long)]
    output_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> ExitCode {
    let result = match &args.output_dir {
        Some(dir) => write_files(dir),
        None => keda_api::crd::all_yaml()
            .map_err(|e| e.to_string())
            .and_then(|yaml| {
                std::io::stdout()
                    .write_all(yaml.as_bytes())
                    .map_err(|e| e.to_string())
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keda-rs crds: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_files(dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (file, crd) in keda_api::crd::all() {
        let yaml = keda_api::crd::to_yaml(&crd).map_err(|e| e.to_string())?;
        let path = dir.join(file);
        std::fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
