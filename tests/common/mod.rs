//! What the integration tests share: the stand-in vendor libraries built from `fixtures/*.c`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `fixtures/<source>` compiled once per test binary (per set of `defines`) with the system
/// `cc`; tests copy it, since the loader keeps one instance per file and tests run in parallel.
/// Warnings fail the build, so a fixture that no longer matches the header it stands in for
/// shows up here rather than as a wrong figure.
pub fn stand_in(source: &str, defines: &[&str]) -> PathBuf {
    static BUILT: OnceLock<parking_lot::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let key = format!("{source} {}", defines.join(" "));
    let mut built = BUILT.get_or_init(Default::default).lock();
    if let Some((_, library)) = built.iter().find(|(k, _)| *k == key) {
        return library.clone();
    }
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let library = dir.join(format!("{}.so", source.trim_end_matches(".c")));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(source);
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror"])
        .args(defines)
        .arg("-o")
        .arg(&library)
        .arg(&path)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed on {}", path.display());
    built.push((key, library.clone()));
    library
}
