//! No card number, API key or password reaches the logs, whatever a client sends and at any log level.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::{http, Gateway, TestDb};

const PAN: &str = "4330000000000003";
const PAN_SPACED: &str = "4330 0000 0000 0003";
const PASSWORD: &str = "hunter2-sekret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_sent_by_clients_never_appear_in_logs() {
    for format in ["json", "text"] {
        let db = TestDb::new().await;
        let env = [("PAYGATE_LOG__FORMAT", format), ("PAYGATE_LOG__LEVEL", "trace")];
        let (gateway, demo) = Gateway::fresh(&db, &[], &env);
        let client = http();
        let basic = |key: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
            )
        };
        let mut typo = demo.secret_key.clone();
        typo.pop();
        typo.push('x');
        let requests = vec![
            client
                .get(gateway.url("/v1/merchants/me"))
                .header("authorization", basic(&demo.secret_key)),
            client
                .get(gateway.url("/v1/merchants/me"))
                .header("authorization", format!("Bearer {}", demo.secret_key)),
            client
                .get(gateway.url("/v1/merchants/me"))
                .header("authorization", basic(&typo)),
            client.get(gateway.url(&format!("/v1/merchants/me?cardNumber={PAN}&password={PASSWORD}"))),
            client
                .get(gateway.url(&format!("/v1/payments/{PAN}")))
                .header("x-request-id", PAN),
            client
                .get(gateway.url("/v1/merchants/me"))
                .header("x-request-id", demo.secret_key.clone()),
            client
                .post(gateway.url("/v1/payments/key-in"))
                .header("authorization", basic(&demo.secret_key))
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"cardNumber":"{PAN}","cardPassword":"12","password":"{PASSWORD}","note":"{PAN_SPACED}"}}"#
                )),
            client
                .post(gateway.url("/nowhere"))
                .body(format!("cardNumber={PAN}&password={PASSWORD}")),
        ];
        for request in requests {
            let _ = request.send().await.unwrap();
        }
        // Give the logger a moment to flush the last lines.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let log = gateway.stderr();
        assert!(log.lines().count() > 5, "expected trace logs, got:\n{log}");
        let key_body = &demo.secret_key[8..];
        let client_key_body = &demo.client_key[8..];
        for (what, needle) in [
            ("card number", PAN),
            ("spaced card number", PAN_SPACED),
            ("secret key", key_body),
            ("client key", client_key_body),
            ("typo key", &typo[8..]),
            ("password", PASSWORD),
        ] {
            assert!(!log.contains(needle), "{format} logs contain the {what}:\n{log}");
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:", demo.secret_key));
        assert!(!log.contains(&encoded), "{format} logs contain the Basic credentials");
    }
}
