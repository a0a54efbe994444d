//! The deployment files: compose against the compose specification, Prometheus's scrape
//! configuration and alert rules with promtool, and the dashboard and alerts against the
//! metrics the services really register.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    integration_tests::workspace_root()
}

pub(crate) fn tool(name: &str, env: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    let cached = std::env::var("HOME")
        .map(|home| {
            PathBuf::from(home)
                .join(".cache/eventra/venv/bin")
                .join(name)
        })
        .ok()
        .filter(|p| p.exists());
    cached.unwrap_or_else(|| PathBuf::from(name))
}

fn run(program: &Path, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} is needed to validate the deployment files ({e}); scripts/test installs it",
                program.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{} {args:?}: {text}",
        program.display()
    );
    text
}

#[test]
fn compose_prometheus_config_and_alert_rules_validate() {
    let check_jsonschema = tool("check-jsonschema", "CHECK_JSONSCHEMA");
    let out = run(
        &check_jsonschema,
        &["--builtin-schema", "vendor.compose-spec", "compose.yaml"],
    );
    assert!(out.contains("ok"), "{out}");
    // Every job scrapes with the metrics token, read from the secret compose mounts.
    let config = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let secret = "/run/secrets/metrics_token";
    assert_eq!(config.matches("job_name:").count(), 3);
    assert_eq!(
        config
            .matches(&format!("credentials_file: {secret}"))
            .count(),
        3
    );
    let compose = std::fs::read_to_string(root().join("compose.yaml")).expect("compose.yaml");
    assert!(
        compose.contains("METRICS_TOKEN: ${METRICS_TOKEN:?"),
        "compose sets no token"
    );
    assert!(
        compose.contains("      - metrics_token\n"),
        "Prometheus gets no secret"
    );
    // promtool reads the token file: check a copy that finds one where the secret would be.
    let dir = std::env::temp_dir().join(format!("eventra-prometheus-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let token = dir.join("metrics_token");
    std::fs::write(&token, "a-token-of-at-least-sixteen-bytes").expect("token file");
    std::fs::write(
        dir.join("prometheus.yml"),
        config.replace(secret, &token.display().to_string()),
    )
    .expect("config copy");
    std::fs::copy(
        root().join("deploy/prometheus/alerts.yml"),
        dir.join("alerts.yml"),
    )
    .expect("rules copy");
    let promtool = tool("promtool", "PROMTOOL");
    let checked = dir.join("prometheus.yml").display().to_string();
    let out = run(&promtool, &["check", "config", &checked]);
    assert!(out.contains("SUCCESS"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(
        &promtool,
        &["check", "rules", "deploy/prometheus/alerts.yml"],
    );
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
}

/// `eventra_*` names in a text, without the suffixes Prometheus adds to histograms.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("eventra_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end] == b'_'
                || bytes[end].is_ascii_digit())
        {
            end += 1;
        }
        let name = &text[start..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(name.to_owned());
        i = end;
    }
    names
}

/// The metric names the services register: string literals in `metrics::…!` calls.
fn registered() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for krate in [
        "infra",
        "eventstore",
        "read-models",
        "api-common",
        "command-api",
        "query-api",
        "projector",
    ] {
        for (_, source) in integration_tests::rust_sources(&root().join(krate).join("src")) {
            for (at, _) in source.match_indices("metrics::") {
                let call = &source[at..(at + 200).min(source.len())];
                if let Some(open) = call.find("!(") {
                    let rest = call[open + 2..].trim_start();
                    if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                        names.insert(name.to_owned());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_use_only_metrics_the_services_export() {
    let registered = registered();
    assert!(
        registered.contains("eventra_http_requests_total"),
        "{registered:?}"
    );
    let dashboard_text =
        std::fs::read_to_string(root().join("deploy/grafana/dashboards/eventra.json"))
            .expect("dashboard");
    let dashboard: serde_json::Value =
        serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"], "prometheus",
            "{}",
            panel["title"]
        );
        assert!(panel["targets"].as_array().is_some_and(|t| !t.is_empty()));
    }
    let alerts =
        std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).expect("alerts");
    for (what, text) in [
        ("dashboard", dashboard_text.as_str()),
        ("alerts", alerts.as_str()),
    ] {
        let used = metric_names(text);
        assert!(!used.is_empty(), "{what}");
        let unknown: Vec<_> = used
            .iter()
            .filter(|name| !registered.contains(*name) && *name != "eventra_overview")
            .collect();
        assert!(
            unknown.is_empty(),
            "{what} uses metrics no service exports: {unknown:?}"
        );
    }
    // Every alert the issue asks for is there.
    for alert in [
        "EventraServiceDown",
        "EventraHigh5xxRate",
        "EventraHighP99Latency",
        "EventraProjectionLag",
        "EventraDeadLetters",
        "EventraTenantNearRateLimit",
    ] {
        assert!(alerts.contains(&format!("alert: {alert}")), "{alert}");
    }
}
