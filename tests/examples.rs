//! Every example config in `examples/` and the packaged default config load with
//! `cf-allow check-config`, so none of them rots; a bad config fails with one error line that
//! names the key and its line.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, BIN};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_config(path: &Path) -> Run {
    Run::of(
        Command::new(BIN)
            .arg("--config")
            .arg(path)
            .arg("check-config")
            .env_remove("CF_ALLOW_CONFIG")
            .output()
            .expect("run cf-allow"),
    )
}

/// The example configs, found by listing the directory so new ones are covered too.
fn example_configs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "playbook.yml"))
        .collect();
    files.sort();
    files
}

/// The value of a top-level `backend:` key, read the simple way (examples keep it on one line).
fn backend_key(yaml: &str) -> Option<String> {
    yaml.lines().find_map(|line| {
        let value = line.strip_prefix("backend:")?;
        let value = value.split('#').next().unwrap_or("").trim();
        Some(value.to_string())
    })
}

#[test]
fn every_example_config_loads() {
    let files = example_configs();
    assert!(
        files.len() >= 5,
        "expected at least 5 example configs, found {files:?}"
    );
    let readme = fs::read_to_string(repo().join("examples/README.md")).expect("examples/README.md");
    for file in &files {
        let out = check_config(file);
        let (stdout, stderr) = (&out.stdout, &out.stderr);
        assert!(
            out.code == 0,
            "{}: exit {}\nstdout: {stdout}\nstderr: {stderr}",
            file.display(),
            out.code
        );
        assert!(
            stdout.contains(&format!("config {}: OK", file.display())),
            "{}: {stdout}",
            file.display()
        );
        let yaml = fs::read_to_string(file).expect("read example");
        if let Some(backend) = backend_key(&yaml) {
            assert!(
                stdout.contains(&format!("backend: {backend}\n")),
                "{}: summary does not show backend {backend}: {stdout}",
                file.display()
            );
        }
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            readme.contains(name),
            "examples/README.md does not explain {name}"
        );
    }
}

#[test]
fn packaged_default_config_loads_as_shipped_and_uncommented() {
    let shipped = repo().join("packaging/config.yaml");
    let out = check_config(&shipped);
    assert!(out.code == 0, "{}", out.stderr);
    assert!(out.stdout.contains("backend: detect"), "{}", out.stdout);

    // Every commented setting (`#key`, not `## explanation`) spelled out must be valid too:
    // the documented defaults are real keys with real values.
    let yaml = fs::read_to_string(&shipped).expect("read packaging/config.yaml");
    let uncommented: String = yaml
        .lines()
        .filter(|l| !l.starts_with("##"))
        .map(|l| l.strip_prefix('#').unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    fs::write(&path, &uncommented).expect("write");
    let out = check_config(&path);
    let stdout = &out.stdout;
    assert!(
        out.code == 0,
        "uncommented packaging/config.yaml: {}\n{uncommented}",
        out.stderr
    );
    for expected in [
        "backend: nftables\n",
        "ports: 80, 443\n",
        "source 1: https://api.cloudflare.com/client/v4/ips\n",
        "source 2: https://www.cloudflare.com/ips-v4 + https://www.cloudflare.com/ips-v6\n",
        "state_dir: /var/lib/cf-allow\n",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in {stdout}"
        );
    }
}

#[test]
fn bad_config_fails_with_one_line_naming_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    fs::write(
        &path,
        "backend: nftables\nports: [80, 443]\nnftables:\n  lockdwn: true\n",
    )
    .expect("write");
    let out = check_config(&path);
    let stderr = &out.stderr;
    assert_eq!(out.code, 1, "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout not empty: {}", out.stdout);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line: {stderr}");
    assert!(lines[0].contains("lockdwn"), "{stderr}");
    assert!(lines[0].contains("line 4"), "{stderr}");
    assert!(lines[0].contains(&path.display().to_string()), "{stderr}");
}
