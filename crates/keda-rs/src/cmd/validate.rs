//! `keda-rs validate`: offline checks of KEDA manifests from files, folders or stdin.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keda_api::rules::{scaled_job, scaled_object};
use keda_api::validate::{ObjectReport, Problem, Severity, validate_manifests};
use keda_api::{ScaleTriggers, ScaledJob, ScaledObject};
use keda_operator::scaling::ObjectKind;
use keda_scalers::Registry;

#[derive(clap::Args)]
pub struct Args {
    /// A manifest file, a folder (searched recursively for *.yaml, *.yml, *.json) or `-` for stdin.
    /// May be given several times.
    #[arg(short = 'f', long = "filename", required = true)]
    paths: Vec<PathBuf>,
    /// Do not print warnings (unknown fields, scalers not built in).
    #[arg(long)]
    quiet: bool,
    /// Only what the apiserver checks (the CRD schema and its CEL rule); skip the operator's
    /// rules and the trigger metadata.
    #[arg(long)]
    schema_only: bool,
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
        for mut report in reports {
            if !args.schema_only {
                report.problems.extend(semantic_problems(&text, &report));
            }
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

/// Checks beyond the schema, for objects the schema accepted: the replica bounds and trigger
/// rules the operator applies (spec §6), and every trigger's metadata through the scaler's own
/// parser, without connecting anywhere.
fn semantic_problems(text: &str, report: &ObjectReport) -> Vec<Problem> {
    if !report.is_valid() {
        return Vec::new();
    }
    let Some(document) = serde_yaml::Deserializer::from_str(text).nth(report.document) else {
        return Vec::new();
    };
    let Ok(value) = <serde_json::Value as serde::Deserialize>::deserialize(document) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    match value.get("kind").and_then(|k| k.as_str()) {
        Some("ScaledObject") => {
            let Ok(so) = serde_json::from_value::<ScaledObject>(value) else {
                return problems;
            };
            // The operator's own ScaledObject rules (shared with its reconcile).
            for result in [
                scaled_object::check_replica_bounds(&so),
                scaled_object::check_triggers(&so),
            ] {
                if let Err(e) = result {
                    problems.push(e.into());
                }
            }
            problems.extend(trigger_problems(
                &so.spec.triggers,
                ObjectKind::ScaledObject,
            ));
        }
        Some("ScaledJob") => {
            let Ok(sj) = serde_json::from_value::<ScaledJob>(value) else {
                return problems;
            };
            // The operator's own ScaledJob rules (shared with its reconcile).
            for result in [
                scaled_job::check_job_target(&sj),
                scaled_job::check_triggers(&sj),
            ] {
                if let Err(e) = result {
                    problems.push(e.into());
                }
            }
            problems.extend(scaled_job::warnings(&sj));
            problems.extend(trigger_problems(&sj.spec.triggers, ObjectKind::ScaledJob));
        }
        _ => {}
    }
    problems
}

fn trigger_problems(triggers: &[ScaleTriggers], kind: ObjectKind) -> Vec<Problem> {
    let registry = Registry::builtin();
    let mut problems = Vec::new();
    for (index, trigger) in triggers.iter().enumerate() {
        let field = format!("spec.triggers[{index}]");
        if registry.lookup(&trigger.r#type).is_none() {
            if keda_scalers::known_types::is_keda_trigger_type(&trigger.r#type) {
                problems.push(Problem::warning(
                    &format!("{field}.type"),
                    format!(
                        "the {} scaler is not built into keda-rs yet; its metadata was not checked",
                        trigger.r#type
                    ),
                ));
            } else {
                problems.push(Problem::error(
                    &format!("{field}.type"),
                    format!("no scaler found for type: {}", trigger.r#type),
                ));
            }
            continue;
        }
        let config = match keda_operator::scaling::trigger_config(kind, trigger, index, "", "") {
            Ok(config) => config,
            Err(e) => {
                let parameter = e.parameter().unwrap_or("metadata");
                problems.push(Problem::error(
                    &format!("{field}.{parameter}"),
                    e.to_string(),
                ));
                continue;
            }
        };
        if let Err(e) = registry.parse_only(&config) {
            let parameter = e.parameter().unwrap_or("metadata").to_string();
            // Parameters may come from the target's environment or a TriggerAuthentication,
            // which only exist in the cluster: then a missing value is not certain.
            let unresolvable_offline = trigger.authentication_ref.is_some()
                || trigger.metadata.keys().any(|k| k.ends_with("FromEnv"));
            let path = format!("{field}.metadata.{parameter}");
            if unresolvable_offline {
                problems.push(Problem::warning(
                    &path,
                    format!(
                        "{e} (may be supplied by the environment or authentication at run time)"
                    ),
                ));
            } else {
                problems.push(Problem::error(&path, e.to_string()));
            }
        }
    }
    problems
}
