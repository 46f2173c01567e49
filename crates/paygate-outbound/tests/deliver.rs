#![allow(clippy::unwrap_used)]

//! One delivery attempt against local test servers (loopback allowed explicitly): answers, failures, bounds,
//! redirects, and the headers and bodies as they arrive.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Reply, ScriptedResolver, TestServer};
use paygate_outbound::signing::{verify, webhook_headers, WebhookSecret, DEFAULT_TOLERANCE_SECS};
use paygate_outbound::{
    form_encode, notification_succeeded, webhook_succeeded, Deliverer, DelivererBuildError, DelivererConfig,
    DeliveryError, DeliveryResult, SsrfPolicy, CONTENT_TYPE_FORM, CONTENT_TYPE_JSON,
};

const BODY_MAX: usize = 4096;

fn config() -> DelivererConfig {
    DelivererConfig {
        connect_timeout_ms: 2_000,
        request_timeout_ms: 5_000,
        response_body_max_bytes: BODY_MAX,
        user_agent: "paygate-test/1".to_owned(),
        policy: SsrfPolicy {
            allow_loopback: true,
            allow_private: false,
        },
    }
}

fn deliverer() -> Deliverer {
    Deliverer::new(config()).unwrap()
}

async fn post_json(deliverer: &Deliverer, url: &str) -> DeliveryResult {
    deliverer.post(url, Vec::new(), CONTENT_TYPE_JSON, b"{}".to_vec()).await
}

#[tokio::test]
async fn answers_are_recorded_with_their_status_and_body() {
    // (status, body) → (webhook succeeded, notification succeeded)
    let cases: [(u16, &str, bool, bool); 9] = [
        (200, "ok", true, false),
        (204, "", true, false),
        (200, "SUCCESS", true, true),
        (200, "RESULT=SUCCESS\n", true, true),
        (200, "success", true, false),
        (200, "FAIL", true, false),
        (500, "SUCCESS", false, false),
        (500, "internal error", false, false),
        (404, "not found", false, false),
    ];
    let deliverer = deliverer();
    for (status, body, webhook_ok, noti_ok) in cases {
        let server = TestServer::start(move |_| Reply::text(status, body)).await;
        let result = post_json(&deliverer, &server.url("/hook")).await;
        assert_eq!(result.error, None, "{status} {body}");
        assert_eq!(result.status, Some(status));
        assert_eq!(result.response_body, body);
        assert!(!result.response_truncated);
        assert_eq!(webhook_succeeded(&result), webhook_ok, "{status} {body}");
        assert_eq!(notification_succeeded(&result), noti_ok, "{status} {body}");
    }
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = TestServer::start(|_| Reply::Stall(Duration::from_secs(10))).await;
    let deliverer = Deliverer::new(DelivererConfig {
        request_timeout_ms: 300,
        ..config()
    })
    .unwrap();
    let result = post_json(&deliverer, &server.url("/slow")).await;
    assert_eq!(result.error, Some(DeliveryError::Timeout));
    assert_eq!(result.status, None);
    assert!(!result.error.as_ref().unwrap().never_sent());
    assert!(!webhook_succeeded(&result));
    // The request did arrive: a timeout is not "never sent".
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let result = post_json(&deliverer(), &format!("http://127.0.0.1:{port}/hook")).await;
    match &result.error {
        Some(error @ DeliveryError::Connect(message)) => {
            assert!(error.never_sent());
            assert!(
                !message.contains("127.0.0.1"),
                "the description must not repeat the URL: {message}"
            );
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert_eq!(result.status, None);
}

/// TLS is on (rustls): an https URL whose server does not speak TLS fails the handshake, so nothing is sent.
#[tokio::test]
async fn https_to_a_server_without_tls_is_a_connect_error() {
    let server = TestServer::start(|_| Reply::text(200, "ok")).await;
    let url = format!("https://127.0.0.1:{}/hook", server.addr.port());
    let result = post_json(&deliverer(), &url).await;
    assert!(
        matches!(result.error, Some(DeliveryError::Connect(_))),
        "{:?}",
        result.error
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_redirect_is_recorded_not_followed() {
    let server = TestServer::start(|request| {
        if request.path == "/hook" {
            Reply::Status {
                status: 302,
                headers: vec![("Location", "/elsewhere".to_owned())],
                body: b"moved".to_vec(),
            }
        } else {
            Reply::text(200, "SUCCESS")
        }
    })
    .await;
    let result = post_json(&deliverer(), &server.url("/hook")).await;
    assert_eq!(result.error, None);
    assert_eq!(result.status, Some(302));
    assert!(!webhook_succeeded(&result));
    assert!(!notification_succeeded(&result));
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook"]);
}

#[tokio::test]
async fn a_huge_body_is_cut_at_the_bound_and_the_attempt_completes() {
    let server = TestServer::start(|_| Reply::Endless).await;
    let result = post_json(&deliverer(), &server.url("/huge")).await;
    assert_eq!(result.error, None);
    assert_eq!(result.status, Some(200));
    assert_eq!(result.response_body.len(), BODY_MAX);
    assert!(result.response_truncated);
    assert!(webhook_succeeded(&result));
}

#[tokio::test]
async fn a_long_announced_body_is_truncated_at_a_character_boundary() {
    // 3-byte characters: 4096 is not a multiple of 3, so the cut must step back to a boundary.
    let body = "성".repeat(2000);
    let server = TestServer::start(move |_| Reply::text(200, &body)).await;
    let result = post_json(&deliverer(), &server.url("/hangul")).await;
    assert_eq!(result.error, None);
    assert!(result.response_truncated);
    assert_eq!(result.response_body, "성".repeat(BODY_MAX / 3));
}

#[tokio::test]
async fn signed_webhook_headers_arrive_and_verify() {
    let server = TestServer::start(|_| Reply::text(200, "")).await;
    let old = WebhookSecret::generate();
    let new = WebhookSecret::generate();
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
    let body = br#"{"id":"evt_1","type":"payment.done","sequence":3}"#.to_vec();
    let headers = webhook_headers(&[old.clone(), new.clone()], "msg_01HZX", now, &body);
    let result = deliverer()
        .post(&server.url("/webhooks"), headers, CONTENT_TYPE_JSON, body.clone())
        .await;
    assert!(webhook_succeeded(&result), "{result:?}");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let got = &requests[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.body, body);
    assert_eq!(got.header("content-type"), Some(CONTENT_TYPE_JSON));
    assert_eq!(got.header("user-agent"), Some("paygate-test/1"));
    let id = got.header("webhook-id").unwrap();
    let ts = got.header("webhook-timestamp").unwrap();
    let sig = got.header("webhook-signature").unwrap();
    assert_eq!(id, "msg_01HZX");
    for receiver in [old, new] {
        assert_eq!(
            verify(&[receiver], (id, ts, sig), &got.body, now, DEFAULT_TOLERANCE_SECS),
            Ok(())
        );
    }
}

#[tokio::test]
async fn a_notification_form_arrives_as_sent() {
    let server = TestServer::start(|_| Reply::text(200, "SUCCESS")).await;
    let body = form_encode(&[
        ("paymentKey", "pay_01HZX".to_owned()),
        ("orderName", "토스 티셔츠 외 2건".to_owned()),
        ("status", "DONE".to_owned()),
    ]);
    let result = deliverer()
        .post(&server.url("/noti"), Vec::new(), CONTENT_TYPE_FORM, body.clone())
        .await;
    assert!(notification_succeeded(&result), "{result:?}");
    let got = &server.requests()[0];
    assert_eq!(got.header("content-type"), Some(CONTENT_TYPE_FORM));
    assert_eq!(got.body, body);
}

#[tokio::test]
async fn a_name_goes_through_the_injected_resolver() {
    let server = TestServer::start(|_| Reply::text(200, "SUCCESS")).await;
    let resolver = Arc::new(ScriptedResolver::always("127.0.0.1"));
    let deliverer = Deliverer::with_resolver(config(), resolver.clone()).unwrap();
    let url = format!("http://merchant.example:{}/noti", server.addr.port());
    let result = post_json(&deliverer, &url).await;
    assert!(notification_succeeded(&result), "{result:?}");
    assert_eq!(resolver.call_count(), 1);
    let host = format!("merchant.example:{}", server.addr.port());
    assert_eq!(server.requests()[0].header("host"), Some(host.as_str()));
}

#[tokio::test]
async fn invalid_requests_are_never_sent() {
    let server = TestServer::start(|_| Reply::text(200, "ok")).await;
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (vec![("Host".into(), "evil.example".into())], CONTENT_TYPE_JSON),
        (vec![("Content-Length".into(), "0".into())], CONTENT_TYPE_JSON),
        (vec![("Transfer-Encoding".into(), "chunked".into())], CONTENT_TYPE_JSON),
        (vec![("Proxy-Authorization".into(), "x".into())], CONTENT_TYPE_JSON),
        (vec![("bad name".into(), "x".into())], CONTENT_TYPE_JSON),
        (vec![("x-token".into(), "a\r\nb".into())], CONTENT_TYPE_JSON),
        (vec![("x-big".into(), "v".repeat(9000))], CONTENT_TYPE_JSON),
        (
            (0..33).map(|i| (format!("x-h{i}"), "v".to_owned())).collect(),
            CONTENT_TYPE_JSON,
        ),
        (Vec::new(), "text/plain\n"),
    ];
    let deliverer = deliverer();
    for (headers, content_type) in cases {
        let shown = format!("{:?}", headers.first());
        let result = deliverer
            .post(&server.url("/hook"), headers, content_type, Vec::new())
            .await;
        match &result.error {
            Some(error @ DeliveryError::InvalidRequest(message)) => {
                assert!(error.never_sent());
                assert!(!message.contains("a\r\nb"));
            }
            other => panic!("{shown}: expected an invalid request, got {other:?}"),
        }
    }
    assert_eq!(server.connection_count(), 0);
}

#[test]
fn configurations_out_of_bounds_are_refused() {
    let cases = [
        DelivererConfig {
            connect_timeout_ms: 0,
            ..config()
        },
        DelivererConfig {
            request_timeout_ms: 0,
            ..config()
        },
        DelivererConfig {
            request_timeout_ms: 120_001,
            ..config()
        },
        DelivererConfig {
            response_body_max_bytes: 1024 * 1024 + 1,
            ..config()
        },
    ];
    for case in cases {
        assert!(matches!(Deliverer::new(case), Err(DelivererBuildError::Config(_))));
    }
    assert_eq!(DelivererConfig::default().policy, SsrfPolicy::default());
    assert!(!DelivererConfig::default().policy.allow_loopback);
}

#[test]
fn form_encoding_follows_the_whatwg_serializer() {
    let cases: [(&[(&str, String)], &str); 6] = [
        (&[], ""),
        (&[("a", String::new())], "a="),
        (&[("orderName", "a b".into())], "orderName=a+b"),
        (&[("k", "&=+%?#/".into())], "k=%26%3D%2B%25%3F%23%2F"),
        (&[("k", "*-._~".into())], "k=*-._%7E"),
        (
            &[("name", "홍길동".into()), ("amount", "15000".into())],
            "name=%ED%99%8D%EA%B8%B8%EB%8F%99&amount=15000",
        ),
    ];
    for (pairs, expected) in cases {
        assert_eq!(String::from_utf8(form_encode(pairs)).unwrap(), expected);
    }
}
