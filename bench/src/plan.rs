//! What a run is asked to do: the command line and the sizes of a quick or a full run.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "eventra-bench")]
pub struct Args {
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    pub command_url: String,
    #[arg(long, default_value = "http://127.0.0.1:18081")]
    pub query_url: String,
    /// The database the running system uses.
    #[arg(long)]
    pub database_url: String,
    /// A second, scratch database for the replay scenario.
    #[arg(long)]
    pub replay_database_url: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The system's stream, deleted at the end (the run's events are scratch).
    #[arg(long)]
    pub stream: Option<String>,
    /// The projector binary (for `projector replay users`).
    #[arg(long)]
    pub projector: String,
    /// `name=pid` of each service, for peak memory.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<String>,
    /// Smaller numbers, same scenarios (under three minutes).
    #[arg(long)]
    pub quick: bool,
    /// Only measure raw appends (before the services hold their connections) into this
    /// file, then exit.
    #[arg(long)]
    pub raw_append_out: Option<String>,
    /// Raw appends measured earlier in this run (by `--raw-append-out`).
    #[arg(long)]
    pub raw_append_in: Option<String>,
    /// Where `<UTC timestamp>.json` goes.
    #[arg(long, default_value = "bench/results")]
    pub out_dir: String,
}

/// The sizes of a run.
pub struct Plan {
    pub seconds: u64,
    pub writers: usize,
    pub big_connections: usize,
    /// Connections held open for the open-loop read, and the requests/s due over them.
    pub held_connections: usize,
    pub held_rate: f64,
    pub search_users: u64,
    pub replay_users: u64,
    pub replay_updates: u32,
    pub jetstream_messages: u64,
    pub import_rows: u64,
}

impl Plan {
    pub fn of(quick: bool) -> Plan {
        if quick {
            Plan {
                seconds: 2,
                writers: 64,
                big_connections: 200,
                held_connections: 5_000,
                held_rate: 5_000.0,
                search_users: 2_000,
                replay_users: 2_000,
                replay_updates: 8,
                jetstream_messages: 20_000,
                import_rows: 2_000,
            }
        } else {
            Plan {
                seconds: 10,
                writers: 64,
                big_connections: 1_000,
                held_connections: 5_000,
                held_rate: 5_000.0,
                search_users: 100_000,
                replay_users: 100_000,
                replay_updates: 8,
                jetstream_messages: 200_000,
                import_rows: 100_000,
            }
        }
    }
}
