//! The card vault, black-box: `paygate vault rotate` run while 200 billing charges run against the gateway; every
//! charge succeeds, afterwards nothing is sealed under an old data key, and a dump of the database holds no card
//! number. Runs on the backend `PAYGATE_TEST_DATABASE_URL` selects.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{http, Gateway, TestDb, BIN};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const CARDS: [&str; 4] = [
    "4330000000000003",
    "5400000000000005",
    "9400000000000007",
    "4330000000000078",
];
const CHARGES: usize = 200;
const CONCURRENCY: usize = 16;

fn vault_cli(args: &[&str], gateway: &Gateway, db: &TestDb) -> Value {
    let output = Command::new(BIN)
        .arg("vault")
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(&gateway.data_dir)
        .args(db.args())
        .env_remove("PAYGATE_DATABASE_URL")
        // Longer than the gateway's refresh interval below, so the gateway seals under the new key before the old
        // ones retire.
        .env("PAYGATE_VAULT__ROTATE_GRACE_MS", "800")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "paygate vault {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

async fn post(base: &str, secret: &str, path: &str, body: Value) -> (u16, Value) {
    let response = http()
        .post(format!("{base}{path}"))
        .basic_auth(secret, Some(""))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every file the database is made of, as bytes: the SQLite files in the data directory, or `pg_dump`'s output.
fn database_dump(gateway: &Gateway, db: &TestDb) -> Vec<u8> {
    if db.is_postgres() {
        let url = db.args().pop().unwrap();
        let output = Command::new("pg_dump").arg("--data-only").arg(&url).output().unwrap();
        assert!(
            output.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return output.stdout;
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&gateway.data_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("paygate.db") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!bytes.is_empty(), "no database files in {}", gateway.data_dir.display());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_while_two_hundred_charges_run_leaves_nothing_under_old_keys() {
    let db = TestDb::new().await;
    let env = [
        ("PAYGATE_VAULT__REFRESH_INTERVAL_MS", "200"),
        ("PAYGATE_RATE_LIMIT__PER_KEY_PER_SECOND", "0"),
        ("PAYGATE_LOG__LEVEL", "warn"),
    ];
    let (gateway, demo) = Gateway::fresh(&db, &[], &env);
    let base = Arc::new(gateway.url(""));
    let secret = Arc::new(demo.secret_key.clone());

    let before = vault_cli(&["status"], &gateway, &db);
    let active_before = before["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "ACTIVE")
        .map(|k| k["version"].as_u64().unwrap())
        .unwrap();

    // Billing keys (sealed cards) to charge, a webhook endpoint (a sealed secret), and the demo merchant's encData
    // keys: every place the vault seals.
    let mut keys = Vec::new();
    for (index, number) in CARDS.iter().take(3).enumerate() {
        let (status, body) = post(
            &base,
            &secret,
            "/v1/billing/authorizations/card",
            json!({"customerKey": format!("vault-customer-{index}"), "cardNumber": number,
                   "cardExpirationYear": "29", "cardExpirationMonth": "12"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        keys.push((
            body["billingKey"].as_str().unwrap().to_owned(),
            format!("vault-customer-{index}"),
        ));
    }
    let (status, body) = post(
        &base,
        &secret,
        "/v1/webhooks",
        json!({"url": "https://shop.example/hooks", "eventTypes": ["PAYMENT_STATUS_CHANGED"]}),
    )
    .await;
    // The SSRF guard may refuse the name if it does not resolve here; the other places are enough then.
    assert!(status == 200 || status == 400, "{body}");

    // 200 charges, 16 at a time, while the rotation runs in its own process.
    let keys = Arc::new(keys);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut charges = Vec::new();
    for index in 0..CHARGES {
        let (base, secret, keys, permits) = (base.clone(), secret.clone(), keys.clone(), permits.clone());
        charges.push(tokio::spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let (billing_key, customer) = &keys[index % keys.len()];
            post(
                &base,
                &secret,
                &format!("/v1/billing/{billing_key}"),
                json!({"customerKey": customer, "amount": 1_000 + index, "orderId": format!("vault-charge-{index:04}"),
                       "orderName": "정기결제"}),
            )
            .await
        }));
    }
    let rotation = {
        let data_dir = gateway.data_dir.clone();
        let args = db.args();
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["vault", "rotate", "--json", "--data-dir"])
                .arg(&data_dir)
                .args(&args)
                .env_remove("PAYGATE_DATABASE_URL")
                .env("PAYGATE_VAULT__ROTATE_GRACE_MS", "800")
                .output()
                .unwrap()
        })
    };
    let started = std::time::Instant::now();
    let mut done = 0;
    for charge in charges {
        let (status, body) = charge.await.unwrap();
        assert_eq!((status, body["status"].as_str()), (200, Some("DONE")), "{body}");
        done += 1;
    }
    assert_eq!(done, CHARGES);
    let charges_took = started.elapsed();
    let output = rotation.await.unwrap();
    let rotation_took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rotate: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let active = report["active"].as_u64().unwrap();
    assert!(active > active_before, "{report}");
    assert!(
        report["resealed"].as_u64().unwrap() >= 3,
        "the billing cards were re-encrypted: {report}"
    );
    eprintln!(
        "{CHARGES} charges done {charges_took:?} after the rotation started; the rotation took {rotation_took:?}: {report}"
    );
    assert!(
        report["retired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_u64() == Some(active_before)),
        "{report}"
    );

    // Nothing is sealed under an old key, and the old keys are retired.
    let after = vault_cli(&["status"], &gateway, &db);
    for count in after["sealed"].as_array().unwrap() {
        assert_eq!(count["version"].as_u64(), Some(active), "{after}");
    }
    for key in after["keys"].as_array().unwrap() {
        let expected = if key["version"].as_u64() == Some(active) {
            "ACTIVE"
        } else {
            "RETIRED"
        };
        assert_eq!(key["state"], expected, "{after}");
    }
    // The keys still charge after the rotation, with the cards re-encrypted under the new key.
    let (billing_key, customer) = &keys[0];
    let (status, body) = post(
        &base,
        &secret,
        &format!("/v1/billing/{billing_key}"),
        json!({"customerKey": customer, "amount": 5_000, "orderId": "vault-after", "orderName": "정기결제"}),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("DONE")), "{body}");

    // A dump of the database holds no full card number.
    let dump = database_dump(&gateway, &db);
    for number in CARDS {
        assert!(
            !dump.windows(number.len()).any(|w| w == number.as_bytes()),
            "the database holds {number} in clear"
        );
    }
}
