//! `keda-rs validate`: offline checks of KEDA manifests from files, folders or stdin.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keda_api::validate::{Severity, validate_manifests};

#[derive(clap::Args)]
pub struct Args {
    /// A manifest file, a folder (searched recursively for *.yaml, *.yml, *.json) or `-` for stdin.
    /// May be given several times.
    #[arg(short = 'f', long = "filename", required = true)]
    paths: Vec<PathBuf>,
    /// Do not print warnings (unknown fields).
    #[arg(long)]
    quiet: bool,
}

const EXIT_INVALID: u8 = 1;
const EXIT_UNREADABLE: u8 = 2;

pub fn run(args: &Args) -> ExitCode {
    let mut sources = Vec::new();
    let mut unreadable = false;
    for path in &args.paths {
        if let Err(e) = collect(path, &mut sources) {
            eprintln!("{}: cannot read: {e}", path.display());
            unreadable = true;
        }
    }
    let (mut objects, mut invalid) = (0usize, 0usize);
    for source in &sources {
        let text = match read(source) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", source.display());
                unreadable = true;
                continue;
            }
        };
        let reports = match validate_manifests(&text) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", source.display());
                unreadable = true;
                continue;
            }
        };
        for report in reports {
            objects += 1;
            if !report.is_valid() {
                invalid += 1;
            }
            for problem in &report.problems {
                if args.quiet && problem.severity == Severity::Warning {
                    continue;
                }
                println!("{}: {}: {problem}", source.display(), report.object);
            }
        }
    }
    eprintln!("{objects} KEDA object(s) checked, {invalid} invalid");
    if unreadable {
        ExitCode::from(EXIT_UNREADABLE)
    } else if invalid > 0 {
        ExitCode::from(EXIT_INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

fn read(path: &Path) -> std::io::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
    }
}

/// Expands folders into their manifest files, sorted so output is stable.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path == Path::new("-") || !path.is_dir() {
        if path != Path::new("-") {
            std::fs::metadata(path)?;
        }
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, out)?;
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(entry);
        }
    }
    Ok(())
}
