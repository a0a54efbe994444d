//! The read scenarios: `GET /v1/me` and `GET /health` (the HTTP ceiling) on the query API in
//! closed loops, and `GET /v1/me` over thousands of held connections in an open loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::api::{Api, is, status_of};
use crate::load::{self, Summary};

/// `GET /v1/me` and `GET /health` at 64 and at `big` connections, each recorded in
/// `scenarios`; answers the summaries by `<target>_<c64|big>`.
pub async fn closed(
    api: &Arc<Api>,
    writers: &Arc<Vec<String>>,
    big: usize,
    seconds: Duration,
    scenarios: &mut BTreeMap<String, Value>,
    say: &dyn Fn(&str),
) -> BTreeMap<String, Summary> {
    let mut read_rates = BTreeMap::new();
    for (name, concurrency) in [("c64", 64usize), ("big", big)] {
        for (target, base, path) in [
            ("me", api.query.clone(), "/v1/me"),
            ("health", api.query.clone(), "/health"),
        ] {
            say(&format!("GET {path} with {concurrency} connections"));
            let (http, writers) = (api.http.clone(), Arc::clone(writers));
            let url = format!("{base}{path}");
            let summary = load::closed(
                concurrency,
                seconds,
                move |worker, _| {
                    let (http, writers, url) = (http.clone(), Arc::clone(&writers), url.clone());
                    async move {
                        status_of(
                            http.get(url)
                                .bearer_auth(&writers[worker % writers.len()])
                                .send()
                                .await,
                        )
                    }
                },
                is(200),
            )
            .await;
            read_rates.insert(format!("{target}_{name}"), summary.clone());
            let key = if name == "big" {
                format!("read_{target}_{concurrency}conn")
            } else {
                format!("read_{target}_c64")
            };
            scenarios.insert(key, json!(summary));
        }
    }

    read_rates
}

/// `GET /v1/me` over `connections` held keep-alive connections at `rate` requests/s (open
/// loop, from the due time), recorded as `read_me_open_<connections>conn` with the file limit
/// that allowed them; answers the summary and the connections held.
pub async fn held(
    api: &Api,
    writers: &[String],
    wanted: usize,
    rate: f64,
    seconds: Duration,
    scenarios: &mut BTreeMap<String, Value>,
    say: &dyn Fn(&str),
) -> anyhow::Result<(Summary, usize)> {
    let limit = crate::report::open_files_limit();
    let connections = crate::held::connections_allowed(wanted, limit);
    say(&format!(
        "GET /v1/me over {connections} held connections at {rate:.0} req/s (open loop; file limit {limit:?})"
    ));
    let address = api
        .query
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let held = crate::held::run(&address, "/v1/me", writers, connections, rate, seconds).await?;
    let mut value = json!(held.summary);
    value["connections"] = json!(held.connections);
    value["rate_due"] = json!(held.rate);
    value["open_files_limit"] = json!(limit);
    scenarios.insert(format!("read_me_open_{}conn", held.connections), value);
    Ok((held.summary, held.connections))
}
