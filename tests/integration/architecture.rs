//! The dependency rule, read from the workspace itself: which crate may depend on which
//! (ARCHITECTURE.md, "Invariants"), that the pure core links no I/O, and that no two modules
//! of a crate import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each workspace crate and the workspace crates it may depend on (normal dependencies).
const MAY_DEPEND_ON: [(&str, &[&str]); 10] = [
    ("domain", &[]),
    ("infra", &["domain"]),
    ("eventstore", &["domain", "infra"]),
    ("read-models", &["eventstore", "infra"]),
    ("api-common", &["domain", "infra", "eventstore"]),
    (
        "command-api",
        &["domain", "infra", "eventstore", "api-common"],
    ),
    (
        "query-api",
        &["domain", "infra", "eventstore", "api-common", "read-models"],
    ),
    (
        "projector",
        &["domain", "infra", "eventstore", "api-common", "read-models"],
    ),
    (
        "bench",
        &["domain", "infra", "eventstore", "api-common", "command-api"],
    ),
    (
        "integration-tests",
        &[
            "domain",
            "infra",
            "eventstore",
            "read-models",
            "api-common",
            "command-api",
            "query-api",
            "projector",
        ],
    ),
];

/// What the pure core must not link: anything that does I/O or keeps time.
const NOT_IN_DOMAIN: [&str; 10] = [
    "tokio",
    "tokio-postgres",
    "deadpool-postgres",
    "async-nats",
    "actix-web",
    "reqwest",
    "lettre",
    "tantivy",
    "redis",
    "serde_json",
];

/// Each workspace crate's normal (not dev, not build) dependencies, by name.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(integration_tests::workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata answers JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("name").to_owned();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|dependency| dependency["kind"].is_null())
                .map(|dependency| dependency["name"].as_str().expect("name").to_owned())
                .collect();
            (name, dependencies)
        })
        .collect()
}

#[test]
fn each_crate_depends_only_on_the_crates_the_architecture_allows() {
    let dependencies = dependencies();
    let rules: BTreeMap<&str, &[&str]> = MAY_DEPEND_ON.into_iter().collect();
    let workspace: BTreeSet<&str> = rules.keys().copied().collect();
    assert_eq!(
        dependencies
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        workspace,
        "every workspace crate has a rule (add a new crate to MAY_DEPEND_ON and ARCHITECTURE.md)"
    );
    let mut broken = Vec::new();
    for (name, depends_on) in &dependencies {
        let allowed = rules[name.as_str()];
        for dependency in depends_on {
            if workspace.contains(dependency.as_str()) && !allowed.contains(&dependency.as_str()) {
                broken.push(format!("{name} -> {dependency}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependencies the rule forbids: {broken:?}"
    );
}

#[test]
fn the_pure_core_links_nothing_that_does_io() {
    let dependencies = dependencies();
    let linked: Vec<&String> = dependencies["domain"]
        .iter()
        .filter(|dependency| NOT_IN_DOMAIN.contains(&dependency.as_str()))
        .collect();
    assert!(linked.is_empty(), "domain links {linked:?}");
}

/// The module a `crate::…` path names, as the file that holds it (`a/b.rs` or
/// `a/b/mod.rs`), the deepest one that exists.
fn module_file(src: &Path, path: &[&str]) -> Option<PathBuf> {
    (1..=path.len()).rev().find_map(|depth| {
        let relative: PathBuf = path[..depth].iter().collect();
        [
            src.join(&relative).with_extension("rs"),
            src.join(&relative).join("mod.rs"),
        ]
        .into_iter()
        .find(|file| file.is_file())
    })
}

/// The modules each file of a crate names by `crate::` paths.
fn module_imports(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut imports = BTreeMap::new();
    for (file, text) in integration_tests::rust_sources(src) {
        // Code only: a comment that names a module links nothing.
        let text: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = BTreeSet::new();
        for (index, _) in text.match_indices("crate::") {
            let path: Vec<&str> = text[index + "crate::".len()..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::")
                .filter(|segment| !segment.is_empty())
                .collect();
            if let Some(target) = module_file(src, &path)
                && target != file
            {
                named.insert(target);
            }
        }
        imports.insert(file, named);
    }
    imports
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let root = integration_tests::workspace_root();
    let mut circles = Vec::new();
    for (name, _) in MAY_DEPEND_ON {
        let src = root
            .join(if name == "integration-tests" {
                "tests"
            } else {
                name
            })
            .join("src");
        let imports = module_imports(&src);
        for (file, named) in &imports {
            for other in named {
                if file < other && imports.get(other).is_some_and(|back| back.contains(file)) {
                    circles.push(format!(
                        "{} <-> {}",
                        file.strip_prefix(&root).unwrap_or(file).display(),
                        other.strip_prefix(&root).unwrap_or(other).display()
                    ));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other: {circles:?}"
    );
}

#[test]
fn no_source_file_outside_the_tests_is_much_over_five_hundred_lines() {
    let root = integration_tests::workspace_root();
    let mut long = Vec::new();
    for (name, _) in MAY_DEPEND_ON {
        if name == "integration-tests" {
            continue;
        }
        for (file, text) in integration_tests::rust_sources(&root.join(name).join("src")) {
            let lines = text.lines().count();
            if lines > 550 {
                long.push(format!(
                    "{} ({lines} lines)",
                    file.strip_prefix(&root).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(long.is_empty(), "split these by concern: {long:?}");
}
