//! Installs the console's third-party browser packages (pinned in `web/package.json` and its
//! lockfile) with `npm ci` when they are missing, so that `cargo build` alone produces a
//! binary with every asset embedded. The packages are never copied into the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files of `web/node_modules` that `src/console/assets.rs` embeds.
const VENDORED: &[&str] = &[
    "htmx.org/dist/htmx.min.js",
    "asciinema-player/dist/bundle/asciinema-player.min.js",
    "asciinema-player/dist/bundle/asciinema-player.css",
    "@xterm/xterm/lib/xterm.mjs",
    "@xterm/xterm/css/xterm.css",
    "@xterm/addon-fit/lib/addon-fit.mjs",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../../web");
    let modules = web.join("node_modules");
    for input in ["package.json", "package-lock.json"] {
        println!("cargo::rerun-if-changed={}", web.join(input).display());
    }
    for file in VENDORED {
        // A missing file makes cargo run this script again, so a deleted install comes back.
        println!("cargo::rerun-if-changed={}", modules.join(file).display());
    }
    if !VENDORED.iter().all(|file| modules.join(file).is_file()) || lock_is_newer(&web) {
        npm_ci(&web);
    }
    for file in VENDORED {
        assert!(
            modules.join(file).is_file(),
            "`npm ci` in {} did not install {file}",
            web.display()
        );
    }
}

/// A lockfile changed after the last install (npm writes `node_modules/.package-lock.json`).
fn lock_is_newer(web: &Path) -> bool {
    let modified = |path: PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    match (
        modified(web.join("package-lock.json")),
        modified(web.join("node_modules/.package-lock.json")),
    ) {
        (Some(lock), Some(installed)) => lock > installed,
        _ => true,
    }
}

fn npm_ci(web: &Path) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let status = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(web)
        .status()
        .unwrap_or_else(|error| {
            panic!(
                "running `npm ci` in {} failed ({error}); install Node.js and npm, which fetch \
                 the console's browser packages",
                web.display()
            )
        });
    assert!(
        status.success(),
        "`npm ci` in {} failed with {status}",
        web.display()
    );
}
