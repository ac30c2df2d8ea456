//! A control plane that cannot start says which component failed and why, and leaves nothing
//! running behind.

use test_cluster::{ControlPlane, Error, Options};

#[test]
fn missing_binaries_give_a_clear_error() {
    let empty = std::env::temp_dir().join(format!("keda-rs-no-binaries-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("temp dir");
    let outcome = ControlPlane::start(&Options {
        bin_dir: Some(empty.clone()),
        ..Options::default()
    });
    let _ = std::fs::remove_dir_all(&empty);
    match outcome {
        Err(e @ Error::Spawn { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("cannot start etcd ("), "{text}");
            assert!(text.contains("No such file or directory"), "{text}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("started without binaries"),
    }
}

#[test]
fn a_component_that_exits_is_reported_with_its_log() {
    // A fake etcd that fails at once: the error names it and quotes its output.
    let dir = std::env::temp_dir().join(format!("keda-rs-bad-etcd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fake = dir.join("etcd");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'etcd: simulated failure' >&2\nexit 3\n",
    )
    .expect("script");
    let status = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .expect("chmod");
    assert!(status.success());
    let outcome = ControlPlane::start(&Options {
        bin_dir: Some(dir.clone()),
        ..Options::default()
    });
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Err(e @ Error::Exited { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("etcd exited (exit status: 3)"), "{text}");
            assert!(text.contains("etcd: simulated failure"), "{text}");
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("started with a failing etcd"),
    }
}
