#![allow(clippy::unwrap_used)]

//! Standard Webhooks signing: the specification's own example, secrets, rotation and the receiver's checks.

use paygate_outbound::signing::{
    signature_header, verify, webhook_headers, SecretError, VerifyError, WebhookSecret, DEFAULT_TOLERANCE_SECS,
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SIGNATURE_HEADER_MAX_BYTES,
};

const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TIMESTAMP: i64 = 1_614_265_330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

#[test]
fn reproduces_the_specification_example() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    assert_eq!(secret.sign(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
    assert_eq!(
        signature_header(std::slice::from_ref(&secret), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
        SPEC_SIGNATURE
    );
    assert_eq!(
        verify(
            &[secret],
            (SPEC_MSG_ID, "1614265330", SPEC_SIGNATURE),
            SPEC_BODY,
            SPEC_TIMESTAMP,
            DEFAULT_TOLERANCE_SECS
        ),
        Ok(())
    );
}

#[test]
fn secrets_parse_and_are_bounded() {
    let key24 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let cases: Vec<(String, Result<usize, SecretError>)> = vec![
        (format!("whsec_{key24}"), Ok(24)),
        // 32 bytes, padded and unpadded.
        (format!("whsec_{}", "A".repeat(43) + "="), Ok(32)),
        (format!("whsec_{}", "A".repeat(43)), Ok(32)),
        // 64 bytes: the largest.
        (format!("whsec_{}", "A".repeat(86) + "=="), Ok(64)),
        (key24.to_owned(), Err(SecretError::MissingPrefix)),
        ("WHSEC_".to_owned() + key24, Err(SecretError::MissingPrefix)),
        ("whsec_not*base64!".to_owned(), Err(SecretError::NotBase64)),
        ("whsec_".to_owned(), Err(SecretError::Length(0))),
        // 16 bytes: too short.
        (format!("whsec_{}", "A".repeat(22) + "=="), Err(SecretError::Length(16))),
        // 66 bytes: too long.
        (format!("whsec_{}", "A".repeat(88)), Err(SecretError::Length(66))),
        // Megabytes are refused before decoding.
        (
            format!("whsec_{}", "A".repeat(1 << 20)),
            Err(SecretError::Length(786_432)),
        ),
    ];
    for (text, expected) in cases {
        let got = WebhookSecret::parse(&text).map(|s| {
            assert_eq!(s.as_str(), text);
            base64_len(&s)
        });
        assert_eq!(got, expected, "{}", &text[..text.len().min(40)]);
    }
}

/// The key length, recovered through the public API: `from_bytes` of that many bytes gives a string as long.
fn base64_len(secret: &WebhookSecret) -> usize {
    (24..=64)
        .find(|n| {
            WebhookSecret::from_bytes(&vec![0u8; *n])
                .unwrap()
                .as_str()
                .trim_end_matches('=')
                .len()
                == secret.as_str().trim_end_matches('=').len()
        })
        .unwrap()
}

#[test]
fn generated_secrets_are_fresh_round_trip_and_never_show_in_debug() {
    let a = WebhookSecret::generate();
    let b = WebhookSecret::generate();
    assert_ne!(a.as_str(), b.as_str());
    assert!(a.as_str().starts_with("whsec_"));
    assert_eq!(a.as_str().len(), "whsec_".len() + 44);
    let parsed = WebhookSecret::parse(a.as_str()).unwrap();
    assert_eq!(parsed.sign("msg_1", 1, b"x"), a.sign("msg_1", 1, b"x"));
    let shown = format!("{a:?}");
    assert!(!shown.contains(&a.as_str()["whsec_".len()..]), "{shown}");
    assert_eq!(
        WebhookSecret::from_bytes(&[0u8; 23]).map(|_| ()),
        Err(SecretError::Length(23))
    );
    assert_eq!(
        WebhookSecret::from_bytes(&[0u8; 65]).map(|_| ()),
        Err(SecretError::Length(65))
    );
}

#[test]
fn a_rotation_header_verifies_with_either_secret() {
    let old = WebhookSecret::generate();
    let new = WebhookSecret::generate();
    let header = signature_header(&[old.clone(), new.clone()], "msg_rot", 1_700_000_000, b"{}");
    let entries: Vec<&str> = header.split(' ').collect();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e.starts_with("v1,")));
    for receiver in [
        vec![old.clone()],
        vec![new.clone()],
        vec![WebhookSecret::generate(), new],
    ] {
        assert_eq!(
            verify(&receiver, ("msg_rot", "1700000000", &header), b"{}", 1_700_000_000, 300),
            Ok(())
        );
    }
    assert_eq!(
        verify(
            &[WebhookSecret::generate()],
            ("msg_rot", "1700000000", &header),
            b"{}",
            1_700_000_000,
            300
        ),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn webhook_headers_carry_the_three_standard_headers() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    let headers = webhook_headers(&[secret], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
    assert_eq!(
        headers,
        vec![
            (HEADER_ID.to_owned(), SPEC_MSG_ID.to_owned()),
            (HEADER_TIMESTAMP.to_owned(), "1614265330".to_owned()),
            (HEADER_SIGNATURE.to_owned(), SPEC_SIGNATURE.to_owned()),
        ]
    );
}

/// (webhook-id, webhook-timestamp, webhook-signature, body) and the expected answer.
type VerifyCase<'a> = ((&'a str, String, String, &'a [u8]), Result<(), VerifyError>);

#[test]
fn verify_rejects_what_it_must() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    let secrets = std::slice::from_ref(&secret);
    let now = SPEC_TIMESTAMP;
    let sig_at = |ts: i64| secret.sign(SPEC_MSG_ID, ts, SPEC_BODY);
    let long_header = "v1,x ".repeat(SIGNATURE_HEADER_MAX_BYTES / 5 + 1);
    let other_versions = format!("v2,{} v1a,abc {}", &SPEC_SIGNATURE[3..], SPEC_SIGNATURE);
    let junk_then_valid = format!("v1,!!!notbase64 v1 v1, ,,, {SPEC_SIGNATURE}");
    let only_v2 = format!("v2,{}", &SPEC_SIGNATURE[3..]);
    let old = sig_at(now - 301);
    let edge_old = sig_at(now - 300);
    let edge_new = sig_at(now + 300);
    let new = sig_at(now + 301);

    // (id, timestamp, signature header, body) → expected.
    let cases: Vec<VerifyCase> = vec![
        (
            (SPEC_MSG_ID, "1614265330".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Ok(()),
        ),
        (
            (
                SPEC_MSG_ID,
                "1614265330".into(),
                SPEC_SIGNATURE.into(),
                br#"{"test": 2432232315}"#,
            ),
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            ("msg_other", "1614265330".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            (SPEC_MSG_ID, "1614265331".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            (SPEC_MSG_ID, (now - 301).to_string(), old, SPEC_BODY),
            Err(VerifyError::TooOld),
        ),
        ((SPEC_MSG_ID, (now - 300).to_string(), edge_old, SPEC_BODY), Ok(())),
        ((SPEC_MSG_ID, (now + 300).to_string(), edge_new, SPEC_BODY), Ok(())),
        (
            (SPEC_MSG_ID, (now + 301).to_string(), new, SPEC_BODY),
            Err(VerifyError::TooNew),
        ),
        (
            (
                SPEC_MSG_ID,
                "9223372036854775807".into(),
                SPEC_SIGNATURE.into(),
                SPEC_BODY,
            ),
            Err(VerifyError::TooNew),
        ),
        (
            (SPEC_MSG_ID, "0".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::TooOld),
        ),
        (
            (SPEC_MSG_ID, "abc".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::InvalidTimestamp),
        ),
        (
            (SPEC_MSG_ID, "-5".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::InvalidTimestamp),
        ),
        (
            (SPEC_MSG_ID, "1614265330.5".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::InvalidTimestamp),
        ),
        (
            (
                SPEC_MSG_ID,
                "99999999999999999999".into(),
                SPEC_SIGNATURE.into(),
                SPEC_BODY,
            ),
            Err(VerifyError::InvalidTimestamp),
        ),
        (
            ("", "1614265330".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::MissingHeader(HEADER_ID)),
        ),
        (
            (SPEC_MSG_ID, "".into(), SPEC_SIGNATURE.into(), SPEC_BODY),
            Err(VerifyError::MissingHeader(HEADER_TIMESTAMP)),
        ),
        (
            (SPEC_MSG_ID, "1614265330".into(), "".into(), SPEC_BODY),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE)),
        ),
        (
            (SPEC_MSG_ID, "1614265330".into(), long_header, SPEC_BODY),
            Err(VerifyError::HeaderTooLong(HEADER_SIGNATURE)),
        ),
        ((SPEC_MSG_ID, "1614265330".into(), other_versions, SPEC_BODY), Ok(())),
        ((SPEC_MSG_ID, "1614265330".into(), junk_then_valid, SPEC_BODY), Ok(())),
        (
            (SPEC_MSG_ID, "1614265330".into(), only_v2, SPEC_BODY),
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            (SPEC_MSG_ID, "1614265330".into(), "v1,AAAA".into(), SPEC_BODY),
            Err(VerifyError::NoMatchingSignature),
        ),
    ];
    for ((id, ts, sig, body), expected) in cases {
        assert_eq!(
            verify(secrets, (id, &ts, &sig), body, now, DEFAULT_TOLERANCE_SECS),
            expected,
            "id={id} ts={ts} sig={}",
            &sig[..sig.len().min(60)]
        );
    }
    assert_eq!(
        verify(&[], (SPEC_MSG_ID, "1614265330", SPEC_SIGNATURE), SPEC_BODY, now, 300),
        Err(VerifyError::NoSecrets)
    );
}
