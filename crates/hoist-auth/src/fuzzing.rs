//! Entry points shared by the fuzz targets in `fuzz/` and the tests that replay their
//! corpora, so that both exercise the same code.

use std::path::Path;

use crate::config::{ConfigFile, FileLookup};
use crate::{ConfigEditor, Secret};

/// Registries looked up in every parsed file: Docker Hub under its several names, a
/// registry with a port and a loopback one.
const REGISTRIES: [&str; 5] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.example:5000",
    "localhost",
];

/// Parses `data` as a `config.json` and looks up credentials for a few registries. No
/// credential helper runs. Then reads `data` as a credential helper's `get` output.
pub fn config_bytes(data: &[u8]) {
    if let Ok(file) = ConfigFile::parse(Path::new("config.json"), data) {
        for registry in REGISTRIES {
            let _ = file.lookup(registry);
        }
    }
    let _ = crate::helper::parse_response("docker-credential-fuzz", data);
    edit_bytes(data);
}

/// Stores a login in a `config.json` containing `data`, as `hoist-login` does. When the
/// editor accepts the file, the keychain must read the result and find the new login.
fn edit_bytes(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("config.json");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(mut editor) = ConfigEditor::open(&path) else {
        return;
    };
    let registry = "registry.example:5000";
    if editor
        .set_basic_auth(registry, "fuzz", &Secret::new("fuzz-password"))
        .is_err()
    {
        return;
    }
    let Ok(bytes) = editor.to_bytes() else {
        return;
    };
    let written = ConfigFile::parse(&path, &bytes).expect("the edited file parses");
    let lookup = written.lookup(registry).expect("the new entry decodes");
    assert!(
        matches!(
            lookup,
            Some(FileLookup::Entry { .. } | FileLookup::Helper { .. })
        ),
        "the new login is not found: {lookup:?}"
    );
}
