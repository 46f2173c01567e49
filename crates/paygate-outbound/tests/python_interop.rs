#![cfg(feature = "python-interop")]
#![allow(clippy::unwrap_used)]

//! Interoperability with the reference Python implementation of Standard Webhooks (the `standardwebhooks` package
//! on PyPI): Rust signs and Python verifies, Python signs and Rust verifies, and Python rejects what Rust rejects.
//!
//! Behind the `python-interop` feature because it needs python3 and the package, and it FAILS (never skips) when
//! either is missing:
//!
//! ```text
//! pip install standardwebhooks
//! cargo test -p paygate-outbound --features python-interop --test python_interop
//! ```
//!
//! `PAYGATE_PYTHON` names another interpreter (default `python3`).

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use paygate_outbound::signing::{verify, webhook_headers, WebhookSecret, DEFAULT_TOLERANCE_SECS};

/// `verify SECRET ID TS SIG BODY` exits 0 and prints `verified`, or fails with the library's exception;
/// `sign SECRET ID TS BODY` prints the library's signature.
const SCRIPT: &str = r#"
import sys
from datetime import datetime, timezone
from standardwebhooks import Webhook

mode = sys.argv[1]
if mode == "verify":
    secret, msg_id, ts, sig, body = sys.argv[2:7]
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sig}
    Webhook(secret).verify(body.encode("utf-8"), headers, json_parse=False)
    print("verified")
elif mode == "sign":
    secret, msg_id, ts, body = sys.argv[2:6]
    print(Webhook(secret).sign(msg_id, datetime.fromtimestamp(int(ts), tz=timezone.utc), body))
else:
    sys.exit("unknown mode")
"#;

fn python(args: &[&str]) -> (bool, String, String) {
    let interpreter = std::env::var("PAYGATE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = Command::new(&interpreter)
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {interpreter} ({e}); the python-interop tests need python3"));
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the python-interop tests need the standardwebhooks package (pip install standardwebhooks):\n{stderr}"
    );
    (output.status.success(), stdout, stderr)
}

fn now_secs() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

const BODY: &str =
    r#"{"id":"evt_01HZX","type":"payment.done","data":{"orderName":"토스 티셔츠 외 2건","totalAmount":15000}}"#;

#[test]
fn python_verifies_what_rust_signs() {
    let now = now_secs();
    let spec_secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    for secret in [
        WebhookSecret::generate(),
        spec_secret,
        WebhookSecret::from_bytes(&[7u8; 64]).unwrap(),
    ] {
        let headers = webhook_headers(std::slice::from_ref(&secret), "msg_01HZX", now, BODY.as_bytes());
        let (ok, stdout, stderr) = python(&[
            "verify",
            secret.as_str(),
            &headers[0].1,
            &headers[1].1,
            &headers[2].1,
            BODY,
        ]);
        assert!(ok && stdout == "verified", "python rejected a Rust signature: {stderr}");

        // A tampered body must fail there too, or the check above proves nothing.
        let tampered = BODY.replace("15000", "15001");
        let (ok, _, stderr) = python(&[
            "verify",
            secret.as_str(),
            &headers[0].1,
            &headers[1].1,
            &headers[2].1,
            &tampered,
        ]);
        assert!(!ok && stderr.contains("No matching signature"), "{stderr}");
    }
}

#[test]
fn python_accepts_a_rotation_header_with_either_secret() {
    let now = now_secs();
    let old = WebhookSecret::generate();
    let new = WebhookSecret::generate();
    let headers = webhook_headers(&[old.clone(), new.clone()], "msg_rotation", now, BODY.as_bytes());
    for receiver in [&old, &new] {
        let (ok, _, stderr) = python(&[
            "verify",
            receiver.as_str(),
            &headers[0].1,
            &headers[1].1,
            &headers[2].1,
            BODY,
        ]);
        assert!(ok, "{stderr}");
    }
}

#[test]
fn rust_verifies_what_python_signs() {
    let now = now_secs();
    let secret = WebhookSecret::generate();
    let ts = now.to_string();
    let (ok, signature, stderr) = python(&["sign", secret.as_str(), "msg_from_python", &ts, BODY]);
    assert!(ok, "{stderr}");
    assert_eq!(signature, secret.sign("msg_from_python", now, BODY.as_bytes()));
    assert_eq!(
        verify(
            &[secret],
            ("msg_from_python", &ts, &signature),
            BODY.as_bytes(),
            now,
            DEFAULT_TOLERANCE_SECS
        ),
        Ok(())
    );
}

#[test]
fn python_reproduces_the_specification_example() {
    let (ok, signature, stderr) = python(&[
        "sign",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        r#"{"test": 2432232314}"#,
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}
