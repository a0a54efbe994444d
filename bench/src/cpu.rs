//! Where the CPU went during a scenario: the share of the whole machine (all cores) spent by
//! Postgres (every `postgres` process, and the backends that ended meanwhile), nats-server,
//! each Eventra service and the load generator itself, from `/proc` before and after. What
//! is left is everything else on the machine. It says what bounds a figure.

use std::collections::BTreeMap;

/// CPU ticks so far, by group, and of the whole machine.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    groups: BTreeMap<String, u64>,
    machine: u64,
}

/// Samples the named service processes (`name=pid`), Postgres, nats-server and this process.
pub struct Meter {
    services: Vec<(String, String)>,
}

static METER: std::sync::OnceLock<Meter> = std::sync::OnceLock::new();

/// Names the service processes every scenario's split is measured with (`--pids`).
pub fn init(pids: &[String]) {
    let _ = METER.set(Meter::new(pids));
}

fn meter() -> &'static Meter {
    METER.get_or_init(|| Meter::new(&[]))
}

/// A sample with the meter [`init`] set up.
pub fn sample() -> Sample {
    meter().sample()
}

/// The split since `before`, with the meter [`init`] set up.
pub fn split_since(before: &Sample) -> BTreeMap<String, f64> {
    meter().split_since(before)
}

impl Meter {
    pub fn new(pids: &[String]) -> Meter {
        Meter {
            services: pids
                .iter()
                .filter_map(|entry| entry.split_once('='))
                .map(|(name, pid)| (name.to_owned(), pid.to_owned()))
                .collect(),
        }
    }

    pub fn sample(&self) -> Sample {
        let mut groups = BTreeMap::new();
        for (name, pid) in &self.services {
            groups.insert(name.clone(), ticks(pid, false).unwrap_or(0));
        }
        groups.insert(
            "load generator".to_owned(),
            ticks("self", false).unwrap_or(0),
        );
        let (mut postgres, mut nats) = (0, 0);
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let pid = entry.file_name().to_string_lossy().into_owned();
                if !pid.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                match std::fs::read_to_string(format!("/proc/{pid}/comm")).as_deref() {
                    // The children's times count what ended backends spent.
                    Ok("postgres\n") => postgres += ticks(&pid, true).unwrap_or(0),
                    Ok("nats-server\n") => nats += ticks(&pid, false).unwrap_or(0),
                    _ => {}
                }
            }
        }
        groups.insert("postgres".to_owned(), postgres);
        groups.insert("nats-server".to_owned(), nats);
        Sample {
            groups,
            machine: machine_ticks().unwrap_or(0),
        }
    }

    /// Each group's share of the machine since `before`, in percent (and `other`).
    pub fn split_since(&self, before: &Sample) -> BTreeMap<String, f64> {
        let after = self.sample();
        let machine = after.machine.saturating_sub(before.machine) as f64;
        let mut split = BTreeMap::new();
        if machine <= 0.0 {
            return split;
        }
        let mut accounted = 0.0;
        for (name, ticks) in &after.groups {
            let spent = ticks.saturating_sub(before.groups.get(name).copied().unwrap_or(0)) as f64;
            accounted += spent;
            split.insert(name.clone(), percent(spent, machine));
        }
        split.insert(
            "other or idle".to_owned(),
            percent((machine - accounted).max(0.0), machine),
        );
        split
    }
}

/// `part` of `whole` in percent, to two decimals.
fn percent(part: f64, whole: f64) -> f64 {
    (part / whole * 10_000.0).round() / 100.0
}

/// utime + stime of a process (with its reaped children's when `children`), in ticks.
fn ticks(pid: &str, children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) is index 11, stime 12, cutime 13, cstime 14.
    let field = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    let own = field(11)? + field(12)?;
    Some(if children {
        own + field(13).unwrap_or(0) + field(14).unwrap_or(0)
    } else {
        own
    })
}

/// Every core's busy and idle ticks together (the first line of `/proc/stat`).
fn machine_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    Some(
        line.split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured_and_the_shares_add_up() {
        let meter = Meter::new(&[]);
        let before = meter.sample();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 42);
        let split = meter.split_since(&before);
        assert!(split["load generator"] > 0.0, "{split:?}");
        let total: f64 = split.values().sum();
        assert!((99.0..=101.0).contains(&total), "{split:?}");
    }
}
