//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `tests/fixtures/<name>` at the workspace root (byte-identical copies of shared/fixtures).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// Copies a fixture model into a fresh temp dir so a test can break it.
pub fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join(name);
    copy_dir(&fixture(name), &dst);
    (tmp, dst)
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        let name = e.file_name();
        if name == "reference" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &dst.join(name));
        } else {
            std::fs::copy(&p, dst.join(name)).expect("copy");
            let mut perm = std::fs::metadata(dst.join(e.file_name()))
                .expect("meta")
                .permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(dst.join(e.file_name()), perm).expect("chmod");
        }
    }
}
