//! The facade is a library: a user who depends on `sockeye` gets the engine's dependencies,
//! not the binary's (its argument parser, histograms, signal handling).

use std::process::Command;

#[test]
fn the_facade_depends_on_none_of_the_binarys_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "-p", "sockeye", "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
    for binary_only in ["clap", "hdrhistogram", "signal-hook", "sockeye-cli"] {
        assert!(!crates.contains(&binary_only), "{binary_only} in:\n{tree}");
    }
    assert!(crates.contains(&"sockeye-server"));
    let mut unique = crates.clone();
    unique.sort_unstable();
    unique.dedup();
    println!("{} crates: {}", unique.len(), unique.join(" "));
}
