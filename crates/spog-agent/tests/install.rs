//! `spog-agent install` / `uninstall` / `version`, the real binary, in a temporary unit
//! directory (without systemctl: `--no-start`, `--no-stop`).

mod common;

use common::{TestAgent, binary, run_binary};

#[tokio::test]
async fn install_writes_the_unit_once_and_uninstall_removes_it() {
    let agent = TestAgent::unenrolled("");
    let units = tempfile::tempdir().unwrap();
    let config = agent.config.to_str().unwrap();
    let unit_dir = units.path().to_str().unwrap();
    let install = [
        "install",
        "--config",
        config,
        "--unit-dir",
        unit_dir,
        "--no-start",
    ];

    let (code, stdout, stderr) = run_binary(&install).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");
    let unit_path = units.path().join("spog-agent.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let exec_start = format!(
        "ExecStart={} run --config {config}",
        binary().canonicalize().unwrap().display()
    );
    for line in [
        exec_start.as_str(),
        "Restart=always",
        "RestartSec=5",
        "RestartPreventExitStatus=3",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in\n{unit}");
    }

    let (code, stdout, _) = run_binary(&install).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("up to date"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&unit_path).unwrap(), unit);

    let uninstall = ["uninstall", "--unit-dir", unit_dir, "--no-stop"];
    let (code, stdout, _) = run_binary(&uninstall).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("removed"), "{stdout}");
    assert!(!unit_path.exists());
    let (code, stdout, _) = run_binary(&uninstall).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("not installed"), "{stdout}");
}

#[tokio::test]
async fn install_refuses_a_configuration_that_would_not_start() {
    let agent = TestAgent::unenrolled("[terminal]\nenabled = true");
    let units = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_binary(&[
        "install",
        "--config",
        agent.config.to_str().unwrap(),
        "--unit-dir",
        units.path().to_str().unwrap(),
        "--no-start",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("terminal.user"), "{stderr}");
    assert!(!units.path().join("spog-agent.service").exists());
}

#[tokio::test]
async fn the_version_is_printed_both_ways() {
    let (code, stdout, _) = run_binary(&["--version"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("spog-agent {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, stdout, _) = run_binary(&["version"]).await;
    assert_eq!(code, 0);
    assert!(stdout.starts_with(&format!("spog-agent {}", env!("CARGO_PKG_VERSION"))));
    assert!(stdout.contains("spog-agent.v1"), "{stdout}");
}
