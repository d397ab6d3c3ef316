//! The Prometheus page, as a scraper reads it: README "Metrics" (the table of names), parsed with an
//! OpenMetrics parser rather than searched as text.

use std::time::Duration;

use axum::routing::get;
use openmetrics_parser::{
    MetricFamily, MetricNumber, MetricsExposition, OpenMetricsType, OpenMetricsValue,
};
use serde_json::json;
use ws_core::close::CloseCode;
use ws_core::protocol::Message;
use ws_core::{Client, Server};

use crate::support::{WsClient, config, eventually, http_get};

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;
type Family = MetricFamily<OpenMetricsType, OpenMetricsValue>;

fn family<'a>(page: &'a Exposition, name: &str) -> &'a Family {
    page.families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}; families: {:?}", page.families.keys()))
}

/// The one sample of `family` whose labels are exactly `labels`.
fn sample<'a>(family: &'a Family, labels: &[&str]) -> &'a OpenMetricsValue {
    let labels: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    &family
        .get_sample_by_label_values(&labels)
        .unwrap_or_else(|| panic!("no sample {labels:?} in {}", family.family_name))
        .value
}

fn number(value: &OpenMetricsValue) -> f64 {
    match value {
        OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
        OpenMetricsValue::Counter(c) => c.value.as_f64(),
        other => panic!("not a number: {other:?}"),
    }
}

/// (count, sum, [(upper bound, cumulative count)]) of a histogram sample.
fn histogram(value: &OpenMetricsValue) -> (u64, f64, Vec<(f64, f64)>) {
    let OpenMetricsValue::Histogram(h) = value else {
        panic!("not a histogram: {value:?}");
    };
    let buckets = h
        .buckets
        .iter()
        .map(|b| (b.upper_bound, b.count.as_f64()))
        .collect();
    (
        h.count.expect("count"),
        h.sum.as_ref().map_or(0.0, MetricNumber::as_f64),
        buckets,
    )
}

async fn scrape(addr: std::net::SocketAddr) -> Exposition {
    let (status, page) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    openmetrics_parser::openmetrics::parse_openmetrics(&page)
        .unwrap_or_else(|e| panic!("the page does not parse: {e:?}\n{page}"))
}

async fn request(client: &mut WsClient, kind: &str, id: u64) {
    client.send_json(json!({"type": kind, "id": id})).await;
    let frame = client.answer(id).await;
    assert_eq!(frame["type"], "$reply", "{frame}");
}

/// Handler durations by type, fan-out sizes, send queue lag, server disconnects by code, counters and
/// gauges: each under its documented name and type, with the values the traffic implies.
#[tokio::test]
async fn the_metrics_page_parses_and_counts_what_happened() {
    let server = Server::builder(config())
        .on("join", |client: Client, _: Message| async move {
            client.join("room").map(|_| ())
        })
        .on("work", |_: Client, _: Message| async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
        })
        .on("shout", |client: Client, _: Message| async move {
            client
                .server()
                .to("room")
                .send(Message::new("shouted", json!(1)));
        })
        .on("bye", |client: Client, _: Message| async move {
            client.close(CloseCode::application(4001), "bye");
        })
        .build()
        .expect("valid config");
    let app = server.router().route(
        "/metrics",
        get({
            let server = server.clone();
            move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        ws_core::metrics::CONTENT_TYPE,
                    )],
                    server.metrics_text(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve_app(listener, app).await }
    });
    let url = format!("ws://{addr}/ws");
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = WsClient::connect(&url).await;
        request(&mut client, "join", 1).await;
        clients.push(client);
    }
    for id in 10..14 {
        request(&mut clients[0], "work", id).await;
    }
    request(&mut clients[0], "shout", 20).await;
    for client in &mut clients[1..] {
        assert_eq!(client.recv().await["type"], "shouted");
    }
    clients[0].send_json(json!({"type": "nope"})).await;
    clients[2].send_json(json!({"type": "bye"})).await;
    assert_eq!(clients[2].recv_close().await.code, 4001);
    eventually("the closed client is gone", || async {
        server.stats().connected_clients == 2
    })
    .await;

    let page = scrape(addr).await;

    let durations = family(&page, "ws_handler_duration_seconds");
    assert_eq!(durations.family_type, OpenMetricsType::Histogram);
    let (count, sum, buckets) = histogram(sample(durations, &["work"]));
    assert_eq!(count, 4);
    assert!(sum >= 0.12, "4 handlers of at least 30 ms: {sum}");
    let under_25ms = buckets.iter().find(|(le, _)| *le == 0.025).unwrap().1;
    assert_eq!(under_25ms, 0.0, "none took under 25 ms: {buckets:?}");
    assert_eq!(histogram(sample(durations, &["join"])).0, 3);
    assert_eq!(histogram(sample(durations, &["bye"])).0, 1);
    assert!(
        durations
            .get_sample_by_label_values(&["nope".to_owned()])
            .is_none(),
        "a type the router does not know gets no series"
    );

    let fanout = family(&page, "ws_fanout_recipients");
    assert_eq!(fanout.family_type, OpenMetricsType::Histogram);
    let (count, sum, buckets) = histogram(sample(fanout, &[]));
    assert_eq!((count, sum), (1, 3.0), "one group send reached 3 clients");
    assert_eq!(buckets.iter().find(|(le, _)| *le == 4.0).unwrap().1, 1.0);

    let lag = family(&page, "ws_send_queue_lag_seconds");
    assert_eq!(lag.family_type, OpenMetricsType::Histogram);
    // Sampled: the first write batch of each of the three connections at least.
    assert!(histogram(sample(lag, &[])).0 >= 3);

    let disconnects = family(&page, "ws_server_disconnects");
    assert_eq!(disconnects.family_type, OpenMetricsType::Counter);
    assert_eq!(number(sample(disconnects, &["4001"])), 1.0);
    // The codes the server sends by itself are there from the start.
    assert_eq!(number(sample(disconnects, &["1008"])), 0.0);

    let counter = |name: &str| {
        let f = family(&page, name);
        assert_eq!(f.family_type, OpenMetricsType::Counter, "{name}");
        number(sample(f, &[]))
    };
    // 3 joins, 4 works, 1 shout, 1 unknown, 1 bye.
    assert_eq!(counter("ws_messages_received"), 10.0);
    assert_eq!(counter("ws_unknown_types"), 1.0);
    assert_eq!(counter("ws_connections"), 3.0);
    let gauge = |name: &str| {
        let f = family(&page, name);
        assert_eq!(f.family_type, OpenMetricsType::Gauge, "{name}");
        number(sample(f, &[]))
    };
    assert_eq!(gauge("ws_connected_clients"), 2.0);
    assert_eq!(gauge("ws_groups"), 1.0);
    assert!(
        !page.families.contains_key("ws_backplane_connected"),
        "no backplane series on a single node"
    );
}

/// `ws_...` names in `text`, without the series suffixes of histograms and counters.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("ws_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_count", "_sum", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(family.to_owned());
        rest = &tail[end..];
    }
    names
}

/// README "Metrics": every name the Grafana dashboard queries is in the README's table, and every name in
/// the table that is not a backplane's is on a single node's page.
#[tokio::test]
async fn the_dashboard_and_the_readme_name_the_metrics_the_page_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table: String = readme
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Metrics section")
        .lines()
        .filter(|l| l.starts_with("| `ws_"))
        .collect::<Vec<_>>()
        .join("\n");
    let documented = metric_names(&table);
    assert!(documented.len() >= 25, "{documented:?}");

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets"))
        .map(|t| t["expr"].as_str().expect("expr"))
        .collect();
    let queried = metric_names(&exprs.join("\n"));
    let undocumented: Vec<_> = queried.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "queried but not in the README: {undocumented:?}"
    );
    assert!(queried.len() >= 20, "{queried:?}");

    let server = Server::builder(config())
        .on("x", |_: Client, _: Message| async {})
        .build()
        .unwrap();
    let page = openmetrics_parser::openmetrics::parse_openmetrics(&server.metrics_text()).unwrap();
    let on_page: std::collections::BTreeSet<String> = page.families.keys().cloned().collect();
    let missing: Vec<_> = documented
        .iter()
        .filter(|name| !name.starts_with("ws_backplane_") && !on_page.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "in the README, not on the page: {missing:?}"
    );
}
