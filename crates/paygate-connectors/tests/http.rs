#![allow(clippy::unwrap_used)]

//! The simulator and `HttpAcquirer` over real loopback sockets: the §5 table, error mapping, faults, the journal.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{approve_request, check_table_journal, run_table, MERCHANT};
use paygate_connectors::http::{HttpAcquirer, HttpAcquirerConfig, HttpAcquirerError, Simulator, SimulatorConfig};
use paygate_connectors::sandbox::{test_cards, JournalKind};
use paygate_connectors::{
    Acquirer, AcquirerId, ApproveOutcome, CancelOutcome, CancelRequest, ConnectorError, InquiryOutcome, Outcome,
};
use paygate_domain::money::Money;
use tokio::sync::oneshot;

/// The simulator holds "timed out" requests this long…
const HANG_MS: u32 = 400;
/// …and the client gives up first.
const CLIENT_TIMEOUT_MS: u32 = 200;

fn id(text: &str) -> AcquirerId {
    AcquirerId::parse(text).unwrap()
}

/// A simulator on 127.0.0.1:0, stopped when dropped.
struct Running {
    addr: SocketAddr,
    simulator: Simulator,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    async fn start(config: SimulatorConfig) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let simulator = Simulator::new(config);
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = simulator.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
        });
        Running {
            addr,
            simulator,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self, acquirer: &str) -> HttpAcquirer {
        HttpAcquirer::new(id(acquirer), &self.base_url(), client_config()).unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

fn client_config() -> HttpAcquirerConfig {
    HttpAcquirerConfig {
        connect_timeout_ms: 100,
        request_timeout_ms: CLIENT_TIMEOUT_MS,
        pool_max_idle: 4,
    }
}

fn config() -> SimulatorConfig {
    SimulatorConfig {
        hang_ms: HANG_MS,
        ..SimulatorConfig::default()
    }
}

fn cancel_request(reference: &str, approval: &str, amount: i64) -> CancelRequest {
    CancelRequest {
        reference: reference.to_owned(),
        approval_reference: approval.to_owned(),
        acquirer_merchant_id: MERCHANT.to_owned(),
        amount: Money::krw(amount),
    }
}

#[tokio::test]
async fn test_card_table_over_http() {
    let running = Running::start(config()).await;
    let client = running.client("A");
    client.health().await.unwrap();
    run_table(&client).await;

    let over_http = client.journal().await.unwrap();
    check_table_journal(&over_http);
    // What came over the wire is exactly what the simulator booked.
    let in_process = running.simulator.acquirer(&id("A")).unwrap().journal();
    assert_eq!(over_http, in_process);
    // The other acquirers saw nothing.
    assert!(running.client("B").journal().await.unwrap().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn http_matches_the_in_process_sandbox() {
    let running = Running::start(config()).await;
    let sandbox = paygate_connectors::sandbox::SandboxAcquirer::new(id("A"));
    run_table(&sandbox).await;
    run_table(&running.client("A")).await;
    let strip_time = |mut entries: Vec<paygate_connectors::sandbox::JournalEntry>| {
        for entry in &mut entries {
            entry.at = paygate_domain::time::UnixMillis::EPOCH;
        }
        entries
    };
    assert_eq!(
        strip_time(running.client("A").journal().await.unwrap()),
        strip_time(sandbox.journal())
    );
    running.stop().await;
}

#[tokio::test]
async fn cancel_reverse_and_inquire_over_http() {
    let running = Running::start(config()).await;
    let client = running.client("B");
    let approved = client
        .approve(&approve_request("pay_1", test_cards::APPROVED_5400, 10_000))
        .await
        .unwrap();
    let ApproveOutcome::Approved(approval) = approved else {
        panic!("{approved:?}");
    };
    assert_eq!(approval.acquirer_transaction_id, "B-1");

    let partial = cancel_request("cxl_1", "pay_1", 4_000);
    let first = client.cancel(&partial).await.unwrap();
    assert!(matches!(first, CancelOutcome::Canceled(_)));
    assert_eq!(client.cancel(&partial).await.unwrap(), first, "idempotent");
    let over = client.cancel(&cancel_request("cxl_2", "pay_1", 7_000)).await.unwrap();
    assert!(matches!(&over, CancelOutcome::Refused { acquirer_code, .. } if acquirer_code == "EXCEEDS_BALANCE"));
    let unknown = client.cancel(&cancel_request("cxl_3", "pay_x", 1)).await.unwrap();
    assert!(matches!(&unknown, CancelOutcome::Refused { acquirer_code, .. } if acquirer_code == "NO_APPROVAL"));

    assert_eq!(
        client.inquire("pay_1", MERCHANT).await.unwrap(),
        InquiryOutcome::Approved(approval)
    );
    client.reverse("pay_1", MERCHANT).await.unwrap();
    client.reverse("pay_1", MERCHANT).await.unwrap();
    client.reverse("pay_never", MERCHANT).await.unwrap();
    assert!(matches!(
        client.inquire("pay_1", MERCHANT).await.unwrap(),
        InquiryOutcome::Reversed { .. }
    ));
    assert_eq!(
        client.inquire("pay_never", MERCHANT).await.unwrap(),
        InquiryOutcome::NotFound
    );

    let kinds: Vec<JournalKind> = client.journal().await.unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            JournalKind::Approved,
            JournalKind::Canceled,
            JournalKind::CancelRefused,
            JournalKind::CancelRefused,
            JournalKind::Reversed,
            JournalKind::ReverseOfUnknown,
        ]
    );
    let journal = client.journal().await.unwrap();
    assert_eq!(journal[1].balance_after, Some(Money::krw(6_000)));
    assert_eq!(journal[4].amount, Some(Money::krw(6_000)));
    running.stop().await;
}

#[tokio::test]
async fn injected_faults_map_to_connector_errors() {
    let request = approve_request("pay_1", test_cards::APPROVED, 1000);

    // Timeout: held past the client's timeout, never applied.
    let running = Running::start(SimulatorConfig {
        timeout_per_mille: 1000,
        ..config()
    })
    .await;
    let started = Instant::now();
    let error = running.client("A").approve(&request).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Timeout), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_millis(u64::from(HANG_MS)),
        "the client gave up first"
    );
    assert!(running.client("A").journal().await.unwrap().is_empty());
    running.stop().await;

    // Lost answer: applied, then the connection is cut.
    let running = Running::start(SimulatorConfig {
        lost_answer_per_mille: 1000,
        ..config()
    })
    .await;
    let client = running.client("A");
    let error = client.approve(&request).await.unwrap_err();
    assert!(matches!(error, ConnectorError::LostAnswer(_)), "{error:?}");
    assert_eq!(error.outcome(), Outcome::Unknown);
    let error = client.inquire("pay_1", MERCHANT).await.unwrap_err();
    assert!(matches!(error, ConnectorError::LostAnswer(_)), "{error:?}");
    let journal = client.journal().await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].kind, JournalKind::Approved);
    running.stop().await;

    // System error: 503, not applied.
    let running = Running::start(SimulatorConfig {
        system_error_per_mille: 1000,
        ..config()
    })
    .await;
    let client = running.client("A");
    let error = client.approve(&request).await.unwrap_err();
    assert!(matches!(error, ConnectorError::SystemError(_)), "{error:?}");
    let error = client.cancel(&cancel_request("cxl_1", "pay_1", 1)).await.unwrap_err();
    assert!(matches!(error, ConnectorError::SystemError(_)), "{error:?}");
    assert!(client.journal().await.unwrap().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn simulator_faults_replay_from_the_seed() {
    let plan = SimulatorConfig {
        lost_answer_per_mille: 200,
        system_error_per_mille: 200,
        seed: 7,
        ..config()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let running = Running::start(plan.clone()).await;
        let client = running.client("C");
        let mut results = Vec::new();
        for index in 0..100 {
            let request = approve_request(&format!("pay_{index}"), test_cards::APPROVED_9400, 1000);
            let result = client.approve(&request).await;
            results.push(match result {
                Ok(ApproveOutcome::Approved(_)) => "approved",
                Ok(ApproveOutcome::Declined(_)) => "declined",
                Err(ConnectorError::LostAnswer(_)) => "lost",
                Err(ConnectorError::SystemError(_)) => "system error",
                Err(other) => panic!("{other:?}"),
            });
        }
        let approved: Vec<String> = client
            .journal()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.reference)
            .collect();
        running.stop().await;
        runs.push((results, approved));
    }
    assert_eq!(runs[0], runs[1]);
    let results = &runs[0].0;
    assert!(results.contains(&"lost") && results.contains(&"system error") && results.contains(&"approved"));
    // Exactly the approved and the lost ones were booked.
    let applied = results.iter().filter(|r| **r == "approved" || **r == "lost").count();
    assert_eq!(runs[0].1.len(), applied);
}

#[tokio::test]
async fn unreachable_acquirer() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = HttpAcquirer::new(id("A"), &format!("http://{addr}"), client_config()).unwrap();
    let error = client
        .approve(&approve_request("pay_1", test_cards::APPROVED, 1000))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectorError::Unreachable(_)), "{error:?}");
    assert_eq!(error.outcome(), Outcome::NotApplied);
}

#[tokio::test]
async fn unknown_acquirer_is_refused_not_applied() {
    let running = Running::start(config()).await;
    let error = running
        .client("Z")
        .approve(&approve_request("pay_1", test_cards::APPROVED, 1000))
        .await
        .unwrap_err();
    assert!(matches!(&error, ConnectorError::SystemError(message) if message.contains("UNKNOWN_ACQUIRER")));
    running.stop().await;
}

/// A server that answers every request with `status` and `body`: what a proxy or a broken acquirer might do.
async fn fake_server(status: u16, body: &'static str) -> (SocketAddr, oneshot::Sender<()>) {
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let status = StatusCode::from_u16(status).unwrap();
    let app = axum::Router::new().fallback(move || async move { (status, body) });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    (addr, stop)
}

#[tokio::test]
async fn unexpected_answers_are_lost_answers() {
    for (status, body) in [
        (500, "internal error"),
        (200, "not json"),
        (200, r#"{"result":"MAYBE"}"#),
        (503, "<html>bad gateway</html>"),
        (302, ""),
    ] {
        let (addr, stop) = fake_server(status, body).await;
        let client = HttpAcquirer::new(id("A"), &format!("http://{addr}"), client_config()).unwrap();
        let error = client
            .approve(&approve_request("pay_1", test_cards::APPROVED, 1000))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ConnectorError::LostAnswer(_)),
            "{status} {body}: {error:?}"
        );
        assert_eq!(error.outcome(), Outcome::Unknown);
        let _ = stop.send(());
    }
    let (addr, stop) = fake_server(503, r#"{"error":"SYSTEM_ERROR","message":"maintenance"}"#).await;
    let client = HttpAcquirer::new(id("A"), &format!("http://{addr}"), client_config()).unwrap();
    let error = client.inquire("pay_1", MERCHANT).await.unwrap_err();
    assert!(matches!(&error, ConnectorError::SystemError(message) if message.contains("maintenance")));
    let _ = stop.send(());
}

#[tokio::test]
async fn base_url_validation() {
    for bad in [
        "not a url",
        "https://127.0.0.1:1",
        "ftp://127.0.0.1/",
        "http://127.0.0.1:1/?x=1",
    ] {
        let result = HttpAcquirer::new(id("A"), bad, client_config());
        assert!(matches!(result, Err(HttpAcquirerError::InvalidBaseUrl(_))), "{bad}");
    }
    assert!(HttpAcquirer::new(id("A"), "http://127.0.0.1:1/sim/", client_config()).is_ok());
}

#[tokio::test]
async fn request_bodies_are_bounded_and_never_echoed() {
    let running = Running::start(config()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/A/approve", running.base_url());

    let huge = format!(r#"{{"reference":"{}"}}"#, "x".repeat(20_000));
    let response = http.post(&url).body(huge).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "BODY_TOO_LARGE");

    // A card number where an integer belongs: refused, and the number does not come back.
    let wrong_type = format!(
        r#"{{"reference":"pay_1","merchantId":"M","amount":"{}","currency":"KRW","card":{{}}}}"#,
        test_cards::APPROVED
    );
    let response = http.post(&url).body(wrong_type).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(!text.contains(test_cards::APPROVED), "{text}");
    assert!(text.contains("BAD_REQUEST"));

    let long_reference = serde_json::json!({
        "reference": "r".repeat(200), "merchantId": "M", "amount": 1000, "currency": "KRW",
        "card": {"number": test_cards::APPROVED, "expiryYear": 2099, "expiryMonth": 12}
    });
    let response = http.post(&url).json(&long_reference).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "invalid field reference");

    let bad_currency = serde_json::json!({
        "reference": "pay_1", "merchantId": "M", "amount": 1000, "currency": "krw",
        "card": {"number": test_cards::APPROVED, "expiryYear": 2099, "expiryMonth": 12}
    });
    let response = http.post(&url).json(&bad_currency).send().await.unwrap();
    assert_eq!(response.status(), 400);

    assert!(running.client("A").journal().await.unwrap().is_empty());
    let response = http
        .get(format!("{}/nowhere", running.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    running.stop().await;
}

#[tokio::test]
async fn journal_paging_over_http() {
    let running = Running::start(config()).await;
    let sandbox = running.simulator.acquirer(&id("A")).unwrap();
    // More than one full page, booked in-process for speed.
    let total = paygate_connectors::http::MAX_JOURNAL_PAGE + 5;
    for index in 0..total {
        sandbox
            .approve(&approve_request(&format!("pay_{index}"), test_cards::APPROVED, 1000))
            .await
            .unwrap();
    }
    let journal = running.client("A").journal().await.unwrap();
    assert_eq!(journal.len(), total);
    assert_eq!(journal, sandbox.journal());

    let page: serde_json::Value = reqwest::get(format!("{}/A/journal?afterSeq=3&limit=2", running.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert_eq!(page["entries"][0]["seq"], 4);
    assert_eq!(page["entries"][0]["kind"], "APPROVED");
    assert_eq!(page["entries"][0]["currency"], "KRW");
    assert_eq!(page["nextAfterSeq"], 5);
    let health: serde_json::Value = reqwest::get(format!("{}/healthz", running.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["acquirers"], serde_json::json!(["A", "B", "C"]));
    running.stop().await;
}

#[tokio::test]
async fn concurrent_retries_over_http_approve_once() {
    let running = Running::start(SimulatorConfig {
        latency_ms: 5,
        latency_jitter_ms: 10,
        ..config()
    })
    .await;
    let client = Arc::new(running.client("A"));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            client
                .approve(&approve_request("pay_1", test_cards::APPROVED, 1000))
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(running.simulator.acquirer(&id("A")).unwrap().counts().approved, 1);
    running.stop().await;
}

#[tokio::test]
async fn overload_is_refused_not_queued() {
    let running = Running::start(SimulatorConfig {
        max_in_flight: 1,
        latency_ms: 500,
        ..config()
    })
    .await;
    let slow_client = HttpAcquirer::new(
        id("A"),
        &running.base_url(),
        HttpAcquirerConfig {
            request_timeout_ms: 2_000,
            ..client_config()
        },
    )
    .unwrap();
    let first = tokio::spawn(async move {
        slow_client
            .approve(&approve_request("pay_1", test_cards::APPROVED, 1000))
            .await
    });
    // Well inside the first request's 500 ms of latency, during which it holds the only permit.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let error = running
        .client("A")
        .approve(&approve_request("pay_2", test_cards::APPROVED, 1000))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ConnectorError::SystemError(message) if message.contains("in flight")),
        "{error:?}"
    );
    assert!(first.await.unwrap().is_ok());
    running.stop().await;
}

#[tokio::test]
async fn run_simulator_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(paygate_connectors::http::run_simulator(
        listener,
        config(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = HttpAcquirer::new(id("A"), &format!("http://{addr}"), client_config()).unwrap();
    client.health().await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
