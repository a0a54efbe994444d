//! The write scenarios: `PATCH /v1/me` in closed loops, and the open loops that measure how
//! soon a write is visible (read model, search index).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, is, status_of};
use crate::load::{self, Summary};

/// `PATCH /v1/me` by distinct users at 1, 8 and 64 clients, each recorded in `scenarios`;
/// answers the c64 summary.
pub async fn patch_me(
    api: &Arc<Api>,
    writers: &Arc<Vec<String>>,
    seconds: Duration,
    scenarios: &mut BTreeMap<String, Value>,
    say: &dyn Fn(&str),
) -> Summary {
    let mut write_c64 = None;
    for concurrency in [1usize, 8, 64] {
        say(&format!("writes at concurrency {concurrency}"));
        let (api, writers) = (Arc::clone(api), Arc::clone(writers));
        let summary = load::closed(
            concurrency,
            seconds,
            move |worker, n| {
                let (api, writers) = (Arc::clone(&api), Arc::clone(&writers));
                async move { api.patch_locale(&writers[worker % writers.len()], n).await }
            },
            is(200),
        )
        .await;
        if concurrency == 64 {
            write_c64 = Some(summary.clone());
        }
        scenarios.insert(format!("write_patch_me_c{concurrency}"), json!(summary));
    }
    write_c64.unwrap_or_else(|| Summary::of(Vec::new(), BTreeMap::new(), 1.0))
}

/// Open loop at `rate`: `PATCH /v1/me`, then `GET /v1/me` with `X-Min-Position`. Answers the
/// writes (from their due time) and the command answer → read answer latencies.
pub async fn freshness(
    api: &Arc<Api>,
    writers: &Arc<Vec<String>>,
    rate: f64,
    seconds: Duration,
) -> (Summary, Summary) {
    let (fresh_writes, freshness) = {
        let (api, writers) = (Arc::clone(api), Arc::clone(writers));
        load::open(rate, seconds, move |n| {
            let (api, writers) = (Arc::clone(&api), Arc::clone(&writers));
            async move {
                let token = writers[n as usize % writers.len()].clone();
                let locale = if n % 2 == 0 { "en" } else { "de" };
                let (status, position) = api.patch_me(&token, json!({"locale": locale})).await;
                let Some(position) = position else {
                    return (false, status, None);
                };
                let answered = Instant::now();
                let read = api
                    .http
                    .get(format!("{}/v1/me", api.query))
                    .bearer_auth(&token)
                    .header("X-Min-Position", position.to_string())
                    .send()
                    .await;
                let read_status = status_of(read);
                if read_status != 200 {
                    return (false, read_status, None);
                }
                (
                    true,
                    status,
                    Some(answered.elapsed().as_secs_f64() * 1000.0),
                )
            }
        })
        .await
    };
    let freshness = Summary::of(freshness, BTreeMap::new(), fresh_writes.seconds);
    (fresh_writes, freshness)
}

/// Open loop at `rate`: a unique new display name, then a search for it with
/// `X-Min-Position`; the command answer → search answer latencies.
pub async fn search_visible(
    api: &Arc<Api>,
    writers: &Arc<Vec<String>>,
    admin_token: &str,
    tenant_id: Uuid,
    rate: f64,
    seconds: Duration,
) -> Summary {
    let (_, visible) = {
        let (api, writers, admin) = (Arc::clone(api), Arc::clone(writers), admin_token.to_owned());
        load::open(rate, seconds, move |n| {
            let (api, writers, admin) = (Arc::clone(&api), Arc::clone(&writers), admin.clone());
            async move {
                let token = writers[n as usize % writers.len()].clone();
                let word = format!("zq{}", Uuid::new_v4().simple());
                let name = format!("Writer {word}");
                let (status, position) = api.patch_me(&token, json!({"display_name": name})).await;
                let Some(position) = position else {
                    return (false, status, None);
                };
                let answered = Instant::now();
                let found = api
                    .http
                    .get(format!(
                        "{}/v1/tenants/{tenant_id}/users?q={word}",
                        api.query
                    ))
                    .bearer_auth(&admin)
                    .header("X-Min-Position", position.to_string())
                    .send()
                    .await;
                let Ok(found) = found else {
                    return (false, 0, None);
                };
                let status = found.status().as_u16();
                let items: Value = found.json().await.unwrap_or(Value::Null);
                if status != 200 || items["items"].as_array().is_none_or(|i| i.is_empty()) {
                    return (false, status, None);
                }
                (
                    true,
                    status,
                    Some(answered.elapsed().as_secs_f64() * 1000.0),
                )
            }
        })
        .await
    };
    Summary::of(visible, BTreeMap::new(), seconds.as_secs_f64())
}
