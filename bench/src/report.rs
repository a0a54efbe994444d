//! What a run reports: scenarios, baselines, ratios and figures, as JSON and as a table.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::load::round;

#[derive(Serialize)]
pub struct Report {
    pub started_at: String,
    pub quick: bool,
    pub machine: Value,
    pub scenarios: BTreeMap<String, Value>,
    pub baselines: BTreeMap<String, Value>,
    pub ratios: BTreeMap<String, f64>,
    pub figures: BTreeMap<String, f64>,
    pub rss_mb: BTreeMap<String, f64>,
}

pub fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        (numerator / denominator * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

pub fn peak_rss_mb(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round(kib / 1024.0))
}

pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    out.push_str("| scenario | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|---:|---|\n");
    for (name, value) in &report.scenarios {
        if value.get("p99_ms").is_some() {
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} |\n",
                value["per_second"],
                value["p50_ms"],
                value["p95_ms"],
                value["p99_ms"],
                value["max_ms"],
                value["errors"]
            ));
        }
    }
    for (name, value) in &report.scenarios {
        if value.get("p99_ms").is_none() {
            out.push_str(&format!("\n- {name}: {value}"));
        }
    }
    out.push_str("\n\nCPU, % of the machine (all cores) during each scenario:\n\n| scenario | split |\n|---|---|\n");
    for (name, value) in &report.scenarios {
        if let Some(split) = value.get("cpu_percent").and_then(Value::as_object) {
            let mut parts: Vec<(&String, f64)> = split
                .iter()
                .map(|(group, share)| (group, share.as_f64().unwrap_or(0.0)))
                .collect();
            parts.sort_by(|a, b| b.1.total_cmp(&a.1));
            let parts: Vec<String> = parts
                .iter()
                .map(|(group, share)| format!("{group} {share}"))
                .collect();
            out.push_str(&format!("| {name} | {} |\n", parts.join(", ")));
        }
    }
    out.push_str("\n| baseline | value |\n|---|---|\n");
    for (name, value) in &report.baselines {
        out.push_str(&format!("| {name} | {value} |\n"));
    }
    out.push_str("\n| ratio or figure | value |\n|---|---:|\n");
    for (name, value) in report.ratios.iter().chain(report.figures.iter()) {
        out.push_str(&format!("| {name} | {value} |\n"));
    }
    for (name, value) in &report.rss_mb {
        out.push_str(&format!("| rss_mb {name} | {value} |\n"));
    }
    out
}

/// Each `name=pid`'s peak memory, in MB.
pub fn peak_rss_of(pids: &[String]) -> BTreeMap<String, f64> {
    let mut rss_mb = BTreeMap::new();
    for entry in pids {
        if let Some((name, pid)) = entry.split_once('=')
            && let Some(mb) = peak_rss_mb(pid)
        {
            rss_mb.insert(name.to_owned(), mb);
        }
    }
    rss_mb
}

/// Writes the report as `<out_dir>/<UTC start>.json` and prints it as markdown.
pub fn write(
    report: &Report,
    out_dir: &str,
    started_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir)?;
    let path = format!("{out_dir}/{}.json", started_at.format("%Y%m%dT%H%M%SZ"));
    std::fs::write(&path, serde_json::to_string_pretty(report)? + "\n")?;
    println!("{}", markdown(report));
    println!("written to {path}");
    Ok(())
}
