//! The `spog` binary as operators run it: offline verification, several server processes
//! sharing one PostgreSQL, configuration and schema versions.

mod audit_verify;
mod cluster;
mod enrollment_token;
mod instance;
mod operations;
mod recordings;

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn spog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spog"))
}

pub fn run(args: &[&str]) -> Output {
    spog().args(args).output().expect("running spog")
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spog-cli-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
