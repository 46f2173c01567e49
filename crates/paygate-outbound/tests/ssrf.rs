#![allow(clippy::unwrap_used)]

//! The SSRF guard, table-driven: every refused range and every spelling of an address the URL parser accepts, the
//! public addresses that must pass, what each policy switch opens, and DNS rebinding caught at connect time.
//! Nothing here sends traffic anywhere but 127.0.0.1: refused URLs are never connected to, and public addresses are
//! only checked as literals.

mod common;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use common::{Reply, ScriptedResolver, TestServer};
use paygate_outbound::ssrf::{classify, GuardedResolver, HostResolver, ResolveFuture, URL_MAX_BYTES};
use paygate_outbound::{Deliverer, DelivererConfig, DeliveryError, NameRefusal, Refusal, SsrfError, SsrfPolicy};

/// What a refused URL must be refused for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    Addr(Refusal),
    Name(NameRefusal),
    Scheme,
    Userinfo,
    Unparseable,
    TooLong,
}

fn why(error: &SsrfError) -> Why {
    match error {
        SsrfError::Address { reason, .. } => Why::Addr(*reason),
        SsrfError::Name(name) => Why::Name(*name),
        SsrfError::Scheme => Why::Scheme,
        SsrfError::Userinfo => Why::Userinfo,
        SsrfError::Unparseable(_) => Why::Unparseable,
        SsrfError::TooLong { .. } => Why::TooLong,
        other => panic!("unexpected error kind {other:?}"),
    }
}

use NameRefusal as N;
use Refusal as R;
use Why::{Addr as A, Name as Nm};

fn refused_table() -> Vec<(String, Why)> {
    let rows: Vec<(&str, Why)> = vec![
        // IPv4 loopback, in every spelling the WHATWG parser turns into 127.0.0.1.
        ("http://127.0.0.1/", A(R::Loopback)),
        ("http://127.255.255.254/", A(R::Loopback)),
        ("http://127.0.0.1:8080/admin", A(R::Loopback)),
        ("http://2130706433/", A(R::Loopback)),
        ("http://0x7f000001/", A(R::Loopback)),
        ("http://0X7F000001/", A(R::Loopback)),
        ("http://0177.0.0.1/", A(R::Loopback)),
        ("http://017700000001/", A(R::Loopback)),
        ("http://127.1/", A(R::Loopback)),
        ("http://127.0.1/", A(R::Loopback)),
        ("http://0x7f.1/", A(R::Loopback)),
        ("http://0x7f.0.0.0x1/", A(R::Loopback)),
        ("http://127.0.0.1./", A(R::Loopback)),
        ("http://%31%32%37.0.0.1/", A(R::Loopback)),
        (
            "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
            A(R::Loopback),
        ),
        ("http://127.0.0.1\\@example.com/", A(R::Loopback)),
        ("https://127.0.0.1:8443/", A(R::Loopback)),
        // "This network".
        ("http://0/", A(R::ThisNetwork)),
        ("http://0.0.0.0/", A(R::ThisNetwork)),
        ("http://0.1.2.3/", A(R::ThisNetwork)),
        // RFC 1918.
        ("http://10.0.0.1/", A(R::Private)),
        ("http://10.255.255.255/", A(R::Private)),
        ("http://0x0a.0.0.1/", A(R::Private)),
        ("http://167772161/", A(R::Private)),
        ("http://172.16.0.1/", A(R::Private)),
        ("http://172.31.255.254/", A(R::Private)),
        ("http://192.168.0.1/", A(R::Private)),
        ("http://0300.0250.0.1/", A(R::Private)),
        // Link-local and the metadata services.
        ("http://169.254.169.254/latest/meta-data/", A(R::CloudMetadata)),
        ("http://0xa9fea9fe/", A(R::CloudMetadata)),
        ("http://2852039166/", A(R::CloudMetadata)),
        ("http://169.254.170.2/v2/credentials", A(R::CloudMetadata)),
        ("http://100.100.100.200/latest/meta-data/", A(R::CloudMetadata)),
        ("http://192.0.0.192/", A(R::CloudMetadata)),
        ("http://168.63.129.16/", A(R::CloudMetadata)),
        ("http://169.254.0.1/", A(R::LinkLocal)),
        ("http://169.254.255.255/", A(R::LinkLocal)),
        // Carrier-grade NAT.
        ("http://100.64.0.1/", A(R::SharedAddressSpace)),
        ("http://100.127.255.254/", A(R::SharedAddressSpace)),
        // Multicast, reserved, broadcast.
        ("http://224.0.0.1/", A(R::Multicast)),
        ("http://239.255.255.250/", A(R::Multicast)),
        ("http://240.0.0.1/", A(R::Reserved)),
        ("http://254.255.255.255/", A(R::Reserved)),
        ("http://255.255.255.255/", A(R::Broadcast)),
        ("http://4294967295/", A(R::Broadcast)),
        // Benchmarking, documentation, IETF, 6to4 relay.
        ("http://198.18.0.1/", A(R::Benchmarking)),
        ("http://198.19.255.254/", A(R::Benchmarking)),
        ("http://192.0.2.1/", A(R::Documentation)),
        ("http://198.51.100.7/", A(R::Documentation)),
        ("http://203.0.113.9/", A(R::Documentation)),
        ("http://192.0.0.8/", A(R::IetfProtocolAssignments)),
        ("http://192.88.99.1/", A(R::Relay6to4)),
        // IPv6.
        ("http://[::1]/", A(R::Loopback)),
        ("http://[0:0:0:0:0:0:0:1]/", A(R::Loopback)),
        ("https://[::1]:8443/", A(R::Loopback)),
        ("http://[::]/", A(R::Unspecified)),
        ("http://[::ffff:127.0.0.1]/", A(R::Loopback)),
        ("http://[::ffff:7f00:1]/", A(R::Loopback)),
        ("http://[0:0:0:0:0:ffff:169.254.169.254]/", A(R::CloudMetadata)),
        ("http://[::ffff:10.0.0.1]/", A(R::Private)),
        ("http://[::ffff:0.0.0.0]/", A(R::ThisNetwork)),
        ("http://[::127.0.0.1]/", A(R::Loopback)),
        ("http://[::10.0.0.1]/", A(R::Private)),
        ("http://[64:ff9b::127.0.0.1]/", A(R::Loopback)),
        ("http://[64:ff9b::a9fe:a9fe]/", A(R::CloudMetadata)),
        ("http://[64:ff9b:1::1]/", A(R::Nat64LocalUse)),
        ("http://[2002:7f00:1::]/", A(R::Loopback)),
        ("http://[2002:c0a8:101::1]/", A(R::Private)),
        ("http://[2002:a9fe:a9fe::]/", A(R::CloudMetadata)),
        ("http://[2001::1]/", A(R::Teredo)),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", A(R::Teredo)),
        ("http://[2001:2::1]/", A(R::Benchmarking)),
        ("http://[2001:10::1]/", A(R::IetfProtocolAssignments)),
        ("http://[2001:db8::1]/", A(R::Documentation)),
        ("http://[3fff::1]/", A(R::Documentation)),
        ("http://[fc00::1]/", A(R::UniqueLocal)),
        ("http://[fd12:3456:789a::1]/", A(R::UniqueLocal)),
        ("http://[fd00:ec2::254]/", A(R::CloudMetadata)),
        ("http://[fe80::1]/", A(R::LinkLocal)),
        ("http://[febf:ffff::1]/", A(R::LinkLocal)),
        ("http://[fec0::1]/", A(R::SiteLocal)),
        ("http://[ff02::1]/", A(R::Multicast)),
        ("http://[100::1]/", A(R::DiscardOnly)),
        ("http://[5f00::1]/", A(R::NotGlobalUnicast)),
        ("http://[4000::1]/", A(R::NotGlobalUnicast)),
        // Names refused before any lookup.
        ("http://localhost/", Nm(N::Localhost)),
        ("http://localhost./", Nm(N::Localhost)),
        ("http://LOCALHOST:8080/", Nm(N::Localhost)),
        ("http://foo.localhost/", Nm(N::Localhost)),
        (
            "http://\u{24db}\u{24de}\u{24d2}\u{24d0}\u{24db}\u{24d7}\u{24de}\u{24e2}\u{24e3}/",
            Nm(N::Localhost),
        ),
        ("http://printer.local/", Nm(N::LocalNetwork)),
        ("http://router.home.arpa/", Nm(N::LocalNetwork)),
        ("http://db.localdomain/", Nm(N::LocalNetwork)),
        ("http://metadata.google.internal/computeMetadata/v1/", Nm(N::Internal)),
        ("http://metadata.google.internal./", Nm(N::Internal)),
        ("http://billing.internal/", Nm(N::Internal)),
        ("http://metadata/", Nm(N::SingleLabel)),
        ("http://intranet:8080/", Nm(N::SingleLabel)),
        // Schemes.
        ("file:///etc/passwd", Why::Scheme),
        ("gopher://127.0.0.1:70/_SET%20x", Why::Scheme),
        ("ftp://example.com/", Why::Scheme),
        ("dict://127.0.0.1:11211/stats", Why::Scheme),
        ("ws://example.com/", Why::Scheme),
        ("javascript:alert(1)", Why::Scheme),
        ("data:text/plain,SUCCESS", Why::Scheme),
        // User info.
        ("http://user:pass@example.com/", Why::Userinfo),
        ("http://user@example.com/", Why::Userinfo),
        ("http://:pass@example.com/", Why::Userinfo),
        ("http://example.com@127.0.0.1/", Why::Userinfo),
        // Not URLs, or addresses the parser rejects.
        ("not a url", Why::Unparseable),
        ("http://", Why::Unparseable),
        ("http://256.0.0.1/", Why::Unparseable),
        ("http://1.2.3.4.5/", Why::Unparseable),
        ("http://[::1/", Why::Unparseable),
    ];
    let mut rows: Vec<(String, Why)> = rows.into_iter().map(|(u, w)| (u.to_owned(), w)).collect();
    rows.push((
        format!("https://example.com/{}", "a".repeat(URL_MAX_BYTES)),
        Why::TooLong,
    ));
    rows
}

/// Public addresses written as literals (no lookup needed), including the embedding forms of public IPv4
/// addresses and the neighbours of refused ranges.
const ALLOWED_LITERALS: [&str; 17] = [
    "http://93.184.216.34/",
    "https://[2606:4700::1111]/",
    "https://[2a00:1450:4001:80b::200e]/webhooks",
    "http://8.8.8.8:8080/hook?token=x",
    "http://1.1.1.1/",
    "http://0x5db8d822/",
    "http://[::ffff:8.8.8.8]/",
    "http://[64:ff9b::808:808]/",
    "http://[2002:808:808::1]/",
    "http://172.15.255.255/",
    "http://172.32.0.1/",
    "http://100.63.255.255/",
    "http://100.128.0.1/",
    "http://192.169.0.1/",
    "http://198.17.255.255/",
    "http://198.20.0.1/",
    "http://223.255.255.255/",
];

/// A resolver that must not be asked: refusals happen before any lookup.
struct NoLookups;

impl HostResolver for NoLookups {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        let host = host.to_owned();
        Box::pin(async move { Err(io::Error::other(format!("unexpected lookup of {host}"))) })
    }
}

#[tokio::test]
async fn every_refused_url_is_refused_for_its_reason() {
    let table = refused_table();
    assert!(table.len() >= 60, "the table has {} rows", table.len());
    let policy = SsrfPolicy::default();
    let mut wrong = Vec::new();
    for (url, expected) in &table {
        let offline = policy.check_url_offline(url).map(|_| ()).map_err(|e| why(&e));
        let online = policy
            .check_url_with(url, &NoLookups)
            .await
            .map(|_| ())
            .map_err(|e| why(&e));
        if offline != Err(*expected) || online != Err(*expected) {
            wrong.push(format!(
                "{url}: expected {expected:?}, offline {offline:?}, online {online:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows wrong:\n{}",
        wrong.len(),
        table.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn public_literals_are_allowed_without_lookups() {
    let policy = SsrfPolicy::default();
    for url in ALLOWED_LITERALS {
        let checked = policy.check_url_with(url, &NoLookups).await;
        assert!(checked.is_ok(), "{url}: {checked:?}");
        assert_eq!(checked.unwrap().addrs().len(), 1, "{url}");
    }
}

#[tokio::test]
async fn allow_loopback_opens_exactly_loopback() {
    let policy = SsrfPolicy {
        allow_loopback: true,
        allow_private: false,
    };
    let loopback = ScriptedResolver::always("127.0.0.1");
    let mut opened = 0;
    for (url, expected) in refused_table() {
        let result = policy
            .check_url_with(&url, &loopback)
            .await
            .map(|_| ())
            .map_err(|e| why(&e));
        match expected {
            A(R::Loopback) | Nm(N::Localhost) => {
                assert_eq!(result, Ok(()), "{url}");
                opened += 1;
            }
            other => assert_eq!(result, Err(other), "{url}"),
        }
    }
    assert!(opened >= 20, "only {opened} loopback rows");
}

#[tokio::test]
async fn allow_private_opens_private_ranges_but_never_metadata_or_link_local() {
    let policy = SsrfPolicy {
        allow_loopback: false,
        allow_private: true,
    };
    let private = ScriptedResolver::always("10.1.2.3");
    for (url, expected) in refused_table() {
        let result = policy
            .check_url_with(&url, &private)
            .await
            .map(|_| ())
            .map_err(|e| why(&e));
        match expected {
            A(R::Private | R::SharedAddressSpace | R::UniqueLocal)
            | Nm(N::LocalNetwork | N::Internal | N::SingleLabel) => assert_eq!(result, Ok(()), "{url}"),
            other => assert_eq!(result, Err(other), "{url}"),
        }
    }
}

#[test]
fn check_ip_names_the_embedded_ipv4_address() {
    let policy = SsrfPolicy::default();
    let err = policy.check_ip("::ffff:169.254.169.254".parse().unwrap()).unwrap_err();
    assert_eq!(
        err,
        SsrfError::Address {
            addr: "::ffff:169.254.169.254".parse().unwrap(),
            embedded: Some("169.254.169.254".parse().unwrap()),
            reason: Refusal::CloudMetadata,
        }
    );
    assert_eq!(
        err.to_string(),
        "the address ::ffff:169.254.169.254 is refused: cloud metadata service"
    );
    assert_eq!(classify("93.184.216.34".parse().unwrap()), None);
}

#[tokio::test]
async fn a_name_is_refused_when_any_of_its_addresses_is() {
    let policy = SsrfPolicy::default();
    let cases: Vec<(Vec<&str>, Result<usize, Why>)> = vec![
        (vec!["93.184.216.34"], Ok(1)),
        (vec!["93.184.216.34", "2606:4700::1111"], Ok(2)),
        (vec!["93.184.216.34", "10.0.0.7"], Err(A(R::Private))),
        (vec!["2606:4700::1111", "::1"], Err(A(R::Loopback))),
        (vec!["169.254.169.254"], Err(A(R::CloudMetadata))),
        (vec!["93.184.216.34", "::ffff:127.0.0.1"], Err(A(R::Loopback))),
    ];
    for (answer, expected) in cases {
        let ips: Vec<IpAddr> = answer.iter().map(|a| a.parse().unwrap()).collect();
        let resolver = ScriptedResolver::new(vec![ips]);
        let result = policy
            .check_url_with("https://merchant.example/hooks", &resolver)
            .await
            .map(|checked| checked.addrs().len())
            .map_err(|e| why(&e));
        assert_eq!(result, expected, "{answer:?}");
    }
    let empty = ScriptedResolver::new(vec![vec![]]);
    assert_eq!(
        policy.check_url_with("https://merchant.example/", &empty).await,
        Err(SsrfError::NoAddresses)
    );
    let failing = NoLookups;
    assert!(matches!(
        policy.check_url_with("https://merchant.example/", &failing).await,
        Err(SsrfError::Resolve(_))
    ));
}

/// Never answers: the lookup bound must end the wait.
struct Hanging;

impl HostResolver for Hanging {
    fn resolve<'a>(&'a self, _host: &'a str) -> ResolveFuture<'a> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn a_lookup_that_never_answers_is_bounded() {
    let result = SsrfPolicy::default()
        .check_url_with("https://slow.example/", &Hanging)
        .await;
    assert_eq!(result, Err(SsrfError::ResolveTimeout));
}

#[tokio::test]
async fn the_connect_time_resolver_filters_addresses() {
    let policy = SsrfPolicy::default();
    let mixed = ScriptedResolver::new(vec![vec![
        "127.0.0.1".parse().unwrap(),
        "93.184.216.34".parse().unwrap(),
    ]]);
    let guard = GuardedResolver::new(policy, Arc::new(mixed));
    assert_eq!(
        guard.resolve_allowed("merchant.example").await,
        Ok(vec!["93.184.216.34".parse().unwrap()])
    );

    let only_private = ScriptedResolver::new(vec![vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()]]);
    let guard = GuardedResolver::new(policy, Arc::new(only_private));
    assert_eq!(
        guard.resolve_allowed("merchant.example").await.map_err(|e| why(&e)),
        Err(A(R::Private))
    );

    let guard = GuardedResolver::new(policy, Arc::new(NoLookups));
    assert_eq!(
        guard.resolve_allowed("localhost").await,
        Err(SsrfError::Name(NameRefusal::Localhost))
    );
}

/// DNS rebinding: the name answers a public address at registration and 127.0.0.1 afterwards. Registration passes;
/// the delivery is refused when the client connects, and the local server (standing in for whatever listens on
/// the loopback interface) sees no connection.
#[tokio::test]
async fn dns_rebinding_is_refused_at_connect_time() {
    let server = TestServer::start(|_| Reply::text(200, "ok")).await;
    let resolver = Arc::new(ScriptedResolver::new(vec![
        vec!["93.184.216.34".parse().unwrap()],
        vec!["127.0.0.1".parse().unwrap()],
    ]));
    let policy = SsrfPolicy::default();
    let url = format!("http://rebind.example:{}/hook", server.addr.port());

    let checked = policy.check_url_with(&url, resolver.as_ref()).await.unwrap();
    assert_eq!(checked.addrs(), ["93.184.216.34".parse::<IpAddr>().unwrap()]);

    let deliverer = Deliverer::with_resolver(
        DelivererConfig {
            policy,
            ..DelivererConfig::default()
        },
        resolver.clone(),
    )
    .unwrap();
    let result = deliverer
        .post(checked.as_str(), Vec::new(), "application/json", b"{}".to_vec())
        .await;
    match &result.error {
        Some(DeliveryError::Refused(SsrfError::Address { addr, reason, .. })) => {
            assert_eq!(*reason, Refusal::Loopback);
            assert_eq!(*addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        }
        other => panic!("expected a connect-time refusal, got {other:?}"),
    }
    assert!(result.error.as_ref().unwrap().never_sent());
    assert_eq!(result.status, None);
    assert_eq!(
        resolver.call_count(),
        2,
        "the client must resolve again at connect time"
    );
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn ip_literals_are_refused_at_delivery_without_connecting() {
    let server = TestServer::start(|_| Reply::text(200, "ok")).await;
    let deliverer = Deliverer::new(DelivererConfig::default()).unwrap();
    let urls = [
        server.url("/hook"),
        format!("http://[::ffff:127.0.0.1]:{}/hook", server.addr.port()),
        format!("http://2130706433:{}/hook", server.addr.port()),
        format!("http://localhost:{}/hook", server.addr.port()),
        "file:///etc/passwd".to_owned(),
    ];
    for url in urls {
        let result = deliverer.post(&url, Vec::new(), "text/plain", Vec::new()).await;
        assert!(
            matches!(result.error, Some(DeliveryError::Refused(_))),
            "{url}: {:?}",
            result.error
        );
        assert_eq!(result.status, None);
    }
    assert_eq!(server.connection_count(), 0);
}
