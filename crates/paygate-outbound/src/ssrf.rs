//! The SSRF guard: which URLs and addresses paygate may send a merchant's messages to.
//!
//! A merchant chooses the URL, so without a guard paygate could be made to call its own admin ports, the cloud
//! metadata service or anything else on its private network. The guard works in three places:
//!
//! 1. at registration, [`SsrfPolicy::check_url`] parses the URL, refuses special names, checks IP literals in every
//!    spelling the URL parser accepts, resolves the name and refuses it if *any* address is refused;
//! 2. before every delivery, [`SsrfPolicy::check_url_offline`] repeats everything but the DNS lookup, which covers IP
//!    literals (the HTTP client never asks a resolver for those);
//! 3. at connect time, [`GuardedResolver`] is the HTTP client's only resolver and drops refused addresses, so a
//!    name that passed registration and later resolves to `127.0.0.1` (DNS rebinding) is never connected to.
//!
//! The rules follow the IANA special-purpose address registries: everything that is not ordinary public unicast is
//! refused, each with its own [`Refusal`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

/// The longest URL accepted. Real webhook URLs are far shorter; the bound keeps stored and logged URLs small.
pub const URL_MAX_BYTES: usize = 2048;

/// How long a DNS lookup may take, at registration and at connect time.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many allowed addresses are handed to the HTTP client; more would only lengthen a failing attempt.
pub const CONNECT_ADDRS_MAX: usize = 16;

/// Which otherwise refused address classes are let through. Both are off by default; tests and local development
/// turn `allow_loopback` on explicitly, and a deployment whose merchants live on a private network may turn
/// `allow_private` on. Nothing turns on link-local addresses or the cloud metadata services.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Lets 127.0.0.0/8, `::1` (and IPv6 forms embedding 127.0.0.0/8) and the names `localhost`, `*.localhost`
    /// through.
    pub allow_loopback: bool,
    /// Lets the RFC 1918 ranges, carrier-grade NAT (100.64.0.0/10), IPv6 unique-local addresses and local names
    /// (`*.local`, `*.internal`, single-label names) through; the addresses they resolve to are still checked.
    pub allow_private: bool,
}

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 0.0.0.0/8: "this network", which reaches the local host on most systems.
    ThisNetwork,
    /// `::`.
    Unspecified,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddressSpace,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// A cloud provider's metadata or host service (AWS, GCP, Azure, Alibaba, Oracle): never allowed.
    CloudMetadata,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 240.0.0.0/4 (reserved for future use).
    Reserved,
    /// 255.255.255.255.
    Broadcast,
    /// 198.18.0.0/15, 2001:2::/48.
    Benchmarking,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 192.0.0.0/24, 2001::/23 (protocol assignments, not merchants' servers).
    IetfProtocolAssignments,
    /// 192.88.99.0/24, the deprecated 6to4 relay anycast.
    Relay6to4,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10 (deprecated site-local).
    SiteLocal,
    /// 2001::/32: a Teredo tunnel could reach anything behind it.
    Teredo,
    /// 64:ff9b:1::/48, local-use NAT64, which translates to addresses of the operator's choosing.
    Nat64LocalUse,
    /// 100::/64, discard-only.
    DiscardOnly,
    /// Outside 2000::/3, the only IPv6 block allocated for global unicast.
    NotGlobalUnicast,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Loopback => "loopback",
            Refusal::ThisNetwork => "\"this network\" (0.0.0.0/8)",
            Refusal::Unspecified => "unspecified address",
            Refusal::Private => "private network",
            Refusal::SharedAddressSpace => "carrier-grade NAT (100.64.0.0/10)",
            Refusal::LinkLocal => "link-local",
            Refusal::CloudMetadata => "cloud metadata service",
            Refusal::Multicast => "multicast",
            Refusal::Reserved => "reserved (240.0.0.0/4)",
            Refusal::Broadcast => "broadcast",
            Refusal::Benchmarking => "benchmarking range",
            Refusal::Documentation => "documentation range",
            Refusal::IetfProtocolAssignments => "IETF protocol assignments",
            Refusal::Relay6to4 => "6to4 relay anycast (192.88.99.0/24)",
            Refusal::UniqueLocal => "IPv6 unique-local (fc00::/7)",
            Refusal::SiteLocal => "IPv6 site-local (fec0::/10)",
            Refusal::Teredo => "Teredo (2001::/32)",
            Refusal::Nat64LocalUse => "local-use NAT64 (64:ff9b:1::/48)",
            Refusal::DiscardOnly => "discard-only (100::/64)",
            Refusal::NotGlobalUnicast => "not IPv6 global unicast (2000::/3)",
        })
    }
}

/// Why a host name is refused before it is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameRefusal {
    /// `localhost` and `*.localhost` (RFC 6761): always the local host.
    Localhost,
    /// `*.local` (mDNS), `*.localdomain`, `*.home.arpa`: the local network.
    LocalNetwork,
    /// `*.internal`, including `metadata.google.internal`.
    Internal,
    /// A name without a dot, which the system resolver completes with its search domains.
    SingleLabel,
}

impl fmt::Display for NameRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameRefusal::Localhost => "localhost names",
            NameRefusal::LocalNetwork => "local-network names (.local, .localdomain, .home.arpa)",
            NameRefusal::Internal => "internal names (.internal)",
            NameRefusal::SingleLabel => "single-label names",
        })
    }
}

/// A URL or address the guard refuses. Messages name the rule and, for addresses, the address; they never repeat
/// the URL, whose path or query may carry a merchant's token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("the URL is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("the URL cannot be parsed: {0}")]
    Unparseable(url::ParseError),
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error("the URL must not carry a user name or password")]
    Userinfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("the host is refused: {0}")]
    Name(NameRefusal),
    #[error("the address {addr} is refused: {reason}")]
    Address {
        addr: IpAddr,
        /// The IPv4 address an IPv6 address embeds (mapped, compatible, NAT64, 6to4), whose rules refused it.
        embedded: Option<Ipv4Addr>,
        reason: Refusal,
    },
    #[error("the host could not be resolved ({0})")]
    Resolve(String),
    #[error("resolving the host took longer than {} ms", RESOLVE_TIMEOUT.as_millis())]
    ResolveTimeout,
    #[error("the host resolved to no address")]
    NoAddresses,
}

impl SsrfError {
    /// The address rule that refused, if an address was refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            SsrfError::Address { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// A URL that passed [`SsrfPolicy::check_url`], with the addresses its host had at that moment. They are kept for
/// the record only: every delivery resolves and checks again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedUrl {
    url: Url,
    addrs: Vec<IpAddr>,
}

impl CheckedUrl {
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL as the parser normalised it (lower-case host, IPv4 literals in dotted form): store this one.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    pub fn into_url(self) -> Url {
        self.url
    }
}

/// The future a [`HostResolver`] returns.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses. Production uses [`SystemResolver`]; tests inject answers (a DNS-rebinding
/// resolver, a name for a loopback test server) without touching the network.
pub trait HostResolver: Send + Sync {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a>;
}

/// The operating system's resolver, through `tokio::net::lookup_host`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0u16)).await?;
            Ok(addrs.map(|addr| addr.ip()).collect())
        })
    }
}

impl SsrfPolicy {
    /// Refuses every address that is not ordinary public unicast, unless this policy lets its class through.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfError> {
        match classify(ip) {
            None => Ok(()),
            Some((reason, embedded)) if !self.allows(reason) => Err(SsrfError::Address {
                addr: ip,
                embedded,
                reason,
            }),
            Some(_) => Ok(()),
        }
    }

    fn allows(&self, reason: Refusal) -> bool {
        match reason {
            Refusal::Loopback => self.allow_loopback,
            Refusal::Private | Refusal::SharedAddressSpace | Refusal::UniqueLocal => self.allow_private,
            _ => false,
        }
    }

    /// The registration check: [`SsrfPolicy::check_url_offline`], then resolves the host with the system resolver
    /// and refuses it if any of its addresses is refused.
    pub async fn check_url(&self, url: &str) -> Result<CheckedUrl, SsrfError> {
        self.check_url_with(url, &SystemResolver).await
    }

    /// [`SsrfPolicy::check_url`] with another resolver.
    pub async fn check_url_with(&self, url: &str, resolver: &dyn HostResolver) -> Result<CheckedUrl, SsrfError> {
        let url = self.check_url_offline(url)?;
        let addrs = match url.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => {
                let addrs = resolve_bounded(resolver, name).await?;
                // One refused address is enough to refuse the name: which address a client picks is not ours to
                // choose, and a name that mixes public and private addresses is a rebinding setup.
                for ip in &addrs {
                    self.check_ip(*ip)?;
                }
                addrs
            }
            None => return Err(SsrfError::NoHost),
        };
        Ok(CheckedUrl { url, addrs })
    }

    /// Everything [`SsrfPolicy::check_url`] checks except the DNS lookup: length, scheme, user info, host names,
    /// and IP literals in every spelling the WHATWG URL parser turns into an address (`2130706433`, `0x7f000001`,
    /// `0177.0.0.1`, `127.1`, `[::ffff:127.0.0.1]`, …). Deliveries call it before every attempt.
    pub fn check_url_offline(&self, url: &str) -> Result<Url, SsrfError> {
        if url.len() > URL_MAX_BYTES {
            return Err(SsrfError::TooLong { max: URL_MAX_BYTES });
        }
        let parsed = Url::parse(url).map_err(SsrfError::Unparseable)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SsrfError::Scheme);
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(SsrfError::Userinfo);
        }
        match parsed.host() {
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => self.check_name(name)?,
            None => return Err(SsrfError::NoHost),
        }
        Ok(parsed)
    }

    /// Refuses names that point inside by convention, before any lookup. `name` is as the URL parser leaves it:
    /// lower case, IDNA-mapped to ASCII.
    pub fn check_name(&self, name: &str) -> Result<(), SsrfError> {
        // A trailing dot makes a name absolute (`localhost.`) without changing what it points to; lower-casing
        // again protects callers that pass a name the URL parser has not seen.
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let name = name.as_str();
        if name.is_empty() {
            return Err(SsrfError::NoHost);
        }
        let refusal = if name == "localhost" || name.ends_with(".localhost") {
            Some(NameRefusal::Localhost)
        } else if [".local", ".localdomain", ".home.arpa"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
            || name == "localdomain"
        {
            Some(NameRefusal::LocalNetwork)
        } else if name == "internal" || name.ends_with(".internal") {
            Some(NameRefusal::Internal)
        } else if !name.contains('.') {
            Some(NameRefusal::SingleLabel)
        } else {
            None
        };
        match refusal {
            None => Ok(()),
            Some(NameRefusal::Localhost) if self.allow_loopback => Ok(()),
            Some(NameRefusal::LocalNetwork | NameRefusal::Internal | NameRefusal::SingleLabel)
                if self.allow_private =>
            {
                Ok(())
            }
            Some(refusal) => Err(SsrfError::Name(refusal)),
        }
    }
}

/// Asks `resolver`, within [`RESOLVE_TIMEOUT`], and insists on at least one address.
async fn resolve_bounded(resolver: &dyn HostResolver, name: &str) -> Result<Vec<IpAddr>, SsrfError> {
    let addrs = tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(name))
        .await
        .map_err(|_| SsrfError::ResolveTimeout)?
        .map_err(|e| SsrfError::Resolve(bounded_message(&e)))?;
    if addrs.is_empty() {
        return Err(SsrfError::NoAddresses);
    }
    Ok(addrs)
}

/// The HTTP client's resolver: resolves through `inner` and keeps only the addresses the policy allows, so the
/// check happens at the moment of connecting, not at registration only. Errors when no address remains.
pub struct GuardedResolver {
    policy: SsrfPolicy,
    inner: Arc<dyn HostResolver>,
}

impl GuardedResolver {
    pub fn new(policy: SsrfPolicy, inner: Arc<dyn HostResolver>) -> GuardedResolver {
        GuardedResolver { policy, inner }
    }

    /// The allowed addresses of `name`, at most [`CONNECT_ADDRS_MAX`]; the first refusal when none is allowed.
    pub async fn resolve_allowed(&self, name: &str) -> Result<Vec<IpAddr>, SsrfError> {
        self.policy.check_name(name)?;
        let addrs = resolve_bounded(self.inner.as_ref(), name).await?;
        let mut allowed = Vec::new();
        let mut first_refusal = None;
        for ip in addrs {
            match self.policy.check_ip(ip) {
                Ok(()) if allowed.len() < CONNECT_ADDRS_MAX => allowed.push(ip),
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(addr = %ip, error = %e, "refused a resolved address at connect time");
                    first_refusal.get_or_insert(e);
                }
            }
        }
        match (allowed.is_empty(), first_refusal) {
            (false, _) => Ok(allowed),
            (true, Some(refusal)) => Err(refusal),
            (true, None) => Err(SsrfError::NoAddresses),
        }
    }
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = GuardedResolver {
            policy: self.policy,
            inner: Arc::clone(&self.inner),
        };
        let name = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0 tells the client to use the URL's port (or the scheme's default).
            let addrs = guard.resolve_allowed(&name).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The rule that refuses `ip`, with the IPv4 address it embeds when the rule came from that; `None` for public
/// unicast.
pub fn classify(ip: IpAddr) -> Option<(Refusal, Option<Ipv4Addr>)> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|reason| (reason, None)),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    (u128::from(ip) & mask) == (u128::from(Ipv6Addr::from(net)) & mask)
}

/// Metadata and host services that answer on otherwise ordinary-looking addresses; named so that no policy switch
/// lets them through.
const METADATA_V4: [[u8; 4]; 5] = [
    [169, 254, 169, 254], // AWS, GCP, Azure IMDS, OpenStack
    [169, 254, 170, 2],   // AWS ECS task metadata
    [100, 100, 100, 200], // Alibaba Cloud (inside carrier-grade NAT space, which allow_private opens)
    [192, 0, 0, 192],     // Oracle Cloud
    [168, 63, 129, 16],   // Azure WireServer (a public address)
];

/// The AWS IMDS IPv6 endpoint, inside fc00::/7 (which allow_private opens).
const METADATA_V6: [u16; 8] = [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254];

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    const RULES: [([u8; 4], u32, Refusal); 16] = [
        ([255, 255, 255, 255], 32, Refusal::Broadcast),
        ([0, 0, 0, 0], 8, Refusal::ThisNetwork),
        ([10, 0, 0, 0], 8, Refusal::Private),
        ([100, 64, 0, 0], 10, Refusal::SharedAddressSpace),
        ([127, 0, 0, 0], 8, Refusal::Loopback),
        ([169, 254, 0, 0], 16, Refusal::LinkLocal),
        ([172, 16, 0, 0], 12, Refusal::Private),
        ([192, 0, 0, 0], 24, Refusal::IetfProtocolAssignments),
        ([192, 0, 2, 0], 24, Refusal::Documentation),
        ([192, 88, 99, 0], 24, Refusal::Relay6to4),
        ([192, 168, 0, 0], 16, Refusal::Private),
        ([198, 18, 0, 0], 15, Refusal::Benchmarking),
        ([198, 51, 100, 0], 24, Refusal::Documentation),
        ([203, 0, 113, 0], 24, Refusal::Documentation),
        ([224, 0, 0, 0], 4, Refusal::Multicast),
        ([240, 0, 0, 0], 4, Refusal::Reserved),
    ];
    if METADATA_V4.iter().any(|m| ip.octets() == *m) {
        return Some(Refusal::CloudMetadata);
    }
    RULES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, reason)| *reason)
}

fn classify_v6(ip: Ipv6Addr) -> Option<(Refusal, Option<Ipv4Addr>)> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some((Refusal::Unspecified, None));
    }
    if ip.is_loopback() {
        return Some((Refusal::Loopback, None));
    }
    if seg == METADATA_V6 {
        return Some((Refusal::CloudMetadata, None));
    }
    // Forms that carry an IPv4 address and reach it: judged by the IPv4 rules, so ::ffff:127.0.0.1 is loopback
    // and ::ffff:8.8.8.8 is as public as 8.8.8.8.
    let embedded = if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0; 8], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        Some(Ipv4Addr::from(low_32(ip)))
    } else if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        Some(Ipv4Addr::from((u32::from(seg[1]) << 16) | u32::from(seg[2])))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return classify_v4(v4).map(|reason| (reason, Some(v4)));
    }
    const RULES: [([u16; 8], u32, Refusal); 11] = [
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Refusal::Nat64LocalUse),
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Refusal::DiscardOnly),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Refusal::Teredo),
        ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, Refusal::Benchmarking),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Refusal::IetfProtocolAssignments),
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Refusal::Documentation),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Refusal::Documentation),
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Refusal::UniqueLocal),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Refusal::LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Refusal::SiteLocal),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Refusal::Multicast),
    ];
    if let Some((_, _, reason)) = RULES.iter().find(|(net, prefix, _)| in_v6(ip, *net, *prefix)) {
        return Some((*reason, None));
    }
    // Everything else outside 2000::/3 is unallocated or special: nothing a merchant runs a server on.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some((Refusal::NotGlobalUnicast, None));
    }
    None
}

/// A resolver's error message, cut to 200 bytes: it ends up in delivery logs.
fn bounded_message(error: &io::Error) -> String {
    let mut text = error.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn low_32(ip: Ipv6Addr) -> u32 {
    let o = ip.octets();
    u32::from_be_bytes([o[12], o[13], o[14], o[15]])
}
