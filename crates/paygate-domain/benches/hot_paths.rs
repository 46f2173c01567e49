//! Criterion benchmarks of the pure work every payment request does, so a change to it is judged by figures:
//! authenticating the key (parse + HMAC), reading the card (Luhn, masking), splitting VAT, minting and printing IDs.
//!
//! `cargo bench -p paygate-domain` (figures in BENCHMARKS.md). Whole-request costs are measured by `paygate-bench`.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use paygate_domain::api_key::{ApiKeySecret, KeyHasher, KeyKind, Mode};
use paygate_domain::card::CardNumber;
use paygate_domain::id::PaymentId;
use paygate_domain::money::Money;
use paygate_domain::time::UnixMillis;
use paygate_domain::vat::VatSplit;

fn authenticate(c: &mut Criterion) {
    let mut byte = 7u8;
    let key = ApiKeySecret::generate(Mode::Test, KeyKind::Secret, || {
        byte = byte.wrapping_mul(31).wrapping_add(17);
        byte
    });
    let text = key.expose_secret().to_owned();
    let hasher = KeyHasher::new(vec![42; 32]).unwrap();
    c.bench_function("api key: parse + HMAC-SHA256 hash", |b| {
        b.iter(|| {
            let parsed = ApiKeySecret::parse(black_box(&text)).unwrap();
            black_box(hasher.hash(&parsed))
        })
    });
}

fn card(c: &mut Criterion) {
    c.bench_function("card: parse (Luhn) + masked summary", |b| {
        b.iter(|| {
            let number = CardNumber::parse(black_box("4330000000000003")).unwrap();
            black_box(number.summary())
        })
    });
}

fn vat(c: &mut Criterion) {
    c.bench_function("vat: split 15,000 KRW with 1,000 tax-free", |b| {
        b.iter(|| black_box(VatSplit::compute(black_box(Money::krw(15_000)), black_box(Money::krw(1_000))).unwrap()))
    });
}

fn ids(c: &mut Criterion) {
    let at = UnixMillis::new(1_795_000_000_000);
    c.bench_function("id: mint + print + parse a paymentKey", |b| {
        b.iter(|| {
            let id = PaymentId::new(black_box(at), black_box([9u8; 10]));
            let text = id.to_string();
            black_box(PaymentId::parse(&text).unwrap())
        })
    });
}

criterion_group!(benches, authenticate, card, vat, ids);
criterion_main!(benches);
