//! Replays every committed fuzz input through its target: the hand-written seeds
//! (`fuzz/seeds`), the corpus fuzzing runs grew from them (`fuzz/corpus`, minimised), and each
//! crash reproducer in `fuzz/regressions/<target>/` (kept after the fix
//! as a regression test). A panic here names the target and file.

use std::path::Path;

#[test]
fn every_committed_fuzz_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut total = 0;
    for (name, target) in atelier_fuzz::TARGETS {
        let mut n = 0;
        for dir in ["seeds", "corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                let run = std::panic::catch_unwind(|| target(&data));
                assert!(run.is_ok(), "{name}: {} panics", f.display());
                n += 1;
            }
        }
        assert!(
            n > 0,
            "{name}: no corpus committed under fuzz/corpus/{name}"
        );
        eprintln!("{name}: {n} inputs");
        total += n;
    }
    eprintln!("{total} fuzz inputs replayed");
}
