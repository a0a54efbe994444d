//! Logging set-up shared by the binaries: JSON lines when `LOG_FORMAT=json`, readable text
//! otherwise, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Libraries whose debug logs carry what they send: statement parameters (decrypted
/// personal data on its way into a read model), SMTP envelopes (addresses). They never log
/// below `info`, whatever `RUST_LOG` asks: a debugging session must not copy personal data
/// into log storage, where erasure cannot reach it.
const NEVER_VERBOSE: [&str; 3] = ["tokio_postgres=info", "lettre=info", "async_nats=info"];

/// `RUST_LOG`, or `default` when it is unset, with [`NEVER_VERBOSE`] on top.
pub fn filter(default: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    for directive in NEVER_VERBOSE {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

pub fn init(log_format_json: bool) {
    let filter = filter("info,tokio_postgres=warn");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stdout);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if log_format_json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
