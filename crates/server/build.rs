//! Rebuilds the crate when a web UI asset changes: `include_dir!` cannot tell cargo itself.

fn main() {
    println!("cargo:rerun-if-changed=web");
}
