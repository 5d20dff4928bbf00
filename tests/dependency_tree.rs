//! The core must stay runtime-agnostic: tokio, fred and redis never enter
//! `redsem-core`'s normal dependency tree, and tokio never enters
//! `redsem-mock`'s. This test fails if a dependency change brings them in.

use std::process::Command;

fn normal_tree(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn assert_absent(package: &str, forbidden: &[&str]) {
    let tree = normal_tree(package);
    assert!(
        tree.iter().any(|p| p == package),
        "cargo tree output lacks {package}: {tree:?}"
    );
    for name in forbidden {
        assert!(
            !tree.iter().any(|p| p == name),
            "{name} entered {package}'s dependency tree: {tree:?}"
        );
    }
}

#[test]
fn core_has_no_runtime_or_client() {
    assert_absent(
        "redsem-core",
        &["tokio", "fred", "redis", "async-std", "smol"],
    );
}

#[test]
fn mock_has_no_tokio() {
    assert_absent("redsem-mock", &["tokio", "fred", "redis"]);
}

#[test]
fn the_check_sees_tokio_where_it_is() {
    // The same check on the fred adapter must find tokio, or the check
    // itself is broken.
    assert!(normal_tree("redsem-fred").iter().any(|p| p == "tokio"));
}
