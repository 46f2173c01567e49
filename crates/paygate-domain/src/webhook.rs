//! Webhook endpoints: where a merchant receives signed events, and how an endpoint changes.
//!
//! An endpoint is read through its [`EndpointFields`] (it dereferences to them) and changed only by the transitions
//! below, each of which yields the next version: the store writes it conditionally on the version it came from, so
//! a concurrent change is refused rather than overwritten.

use crate::api_key::Mode;
use crate::event::EventType;
use crate::id::{MerchantId, WebhookEndpointId};
use crate::sealed::Sealed;
use crate::time::UnixMillis;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointStatus {
    Enabled,
    Disabled,
    Deleted,
}

impl EndpointStatus {
    pub const ALL: [EndpointStatus; 3] = [
        EndpointStatus::Enabled,
        EndpointStatus::Disabled,
        EndpointStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Enabled => "ENABLED",
            EndpointStatus::Disabled => "DISABLED",
            EndpointStatus::Deleted => "DELETED",
        }
    }

    pub fn parse(text: &str) -> Option<EndpointStatus> {
        [
            EndpointStatus::Enabled,
            EndpointStatus::Disabled,
            EndpointStatus::Deleted,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// What an endpoint holds, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointFields {
    pub id: WebhookEndpointId,
    pub merchant_id: MerchantId,
    pub mode: Mode,
    pub url: String,
    /// Sorted, without duplicates.
    pub event_types: Vec<EventType>,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    /// The signing secret, sealed; during a rotation the previous one signs too, until it expires.
    pub secret: Sealed,
    pub previous_secret: Option<(Sealed, UnixMillis)>,
    /// Since when every delivery has failed. The delivery worker owns it; only re-enabling clears it otherwise.
    pub failing_since: Option<UnixMillis>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Every change is conditional on it.
    pub version: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint(EndpointFields);

impl std::ops::Deref for WebhookEndpoint {
    type Target = EndpointFields;

    fn deref(&self) -> &EndpointFields {
        &self.0
    }
}

/// The reason an endpoint the merchant paused carries.
pub const DISABLED_BY_MERCHANT: &str = "disabled by the merchant";

impl WebhookEndpoint {
    /// A new, enabled endpoint (version 0). `event_types` are sorted and deduplicated here.
    pub fn new(
        id: WebhookEndpointId,
        merchant_id: MerchantId,
        mode: Mode,
        url: String,
        event_types: Vec<EventType>,
        secret: Sealed,
        now: UnixMillis,
    ) -> WebhookEndpoint {
        WebhookEndpoint(EndpointFields {
            id,
            merchant_id,
            mode,
            url,
            event_types: normalised(event_types),
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            secret,
            previous_secret: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
            version: 0,
        })
    }

    /// An endpoint as stored, unchecked: for the store, which reads what it wrote, and for tests.
    pub fn restore(fields: EndpointFields) -> WebhookEndpoint {
        WebhookEndpoint(fields)
    }

    pub fn fields(&self) -> &EndpointFields {
        &self.0
    }

    /// The next version, `change` applied.
    fn next(&self, now: UnixMillis, change: impl FnOnce(&mut EndpointFields)) -> WebhookEndpoint {
        let mut next = self.0.clone();
        change(&mut next);
        next.version = self.version.saturating_add(1);
        next.updated_at = now;
        WebhookEndpoint(next)
    }

    /// The merchant's edit: a new URL, new subscriptions, and `enabled` (re-enabling clears the failure streak;
    /// pausing records why). Absent parts stay as they are.
    pub fn edited(
        &self,
        url: Option<String>,
        event_types: Option<Vec<EventType>>,
        enabled: Option<bool>,
        now: UnixMillis,
    ) -> WebhookEndpoint {
        self.next(now, |e| {
            if let Some(url) = url {
                e.url = url;
            }
            if let Some(types) = event_types {
                e.event_types = normalised(types);
            }
            match enabled {
                None => {}
                Some(true) => {
                    e.status = EndpointStatus::Enabled;
                    e.disabled_reason = None;
                    e.failing_since = None;
                }
                Some(false) => {
                    e.status = EndpointStatus::Disabled;
                    e.disabled_reason = Some(DISABLED_BY_MERCHANT.to_owned());
                }
            }
        })
    }

    pub fn deleted(&self, now: UnixMillis) -> WebhookEndpoint {
        self.next(now, |e| e.status = EndpointStatus::Deleted)
    }

    /// A new signing secret; the current one keeps signing until `previous_expires_at`.
    pub fn secret_rolled(&self, secret: Sealed, previous_expires_at: UnixMillis, now: UnixMillis) -> WebhookEndpoint {
        self.next(now, |e| {
            let previous = std::mem::replace(&mut e.secret, secret);
            e.previous_secret = Some((previous, previous_expires_at));
        })
    }

    /// The secrets that sign a delivery sent at `now`: the current one, then the previous one until it expires.
    pub fn signing_secrets(&self, now: UnixMillis) -> Vec<Sealed> {
        let previous = self.previous_secret.iter().filter(|(_, expires)| *expires > now);
        std::iter::once(self.secret.clone())
            .chain(previous.map(|(sealed, _)| sealed.clone()))
            .collect()
    }

    /// Whether an event of this type is delivered here now.
    pub fn receives(&self, event_type: EventType) -> bool {
        self.status == EndpointStatus::Enabled && self.event_types.contains(&event_type)
    }
}

fn normalised(mut types: Vec<EventType>) -> Vec<EventType> {
    types.sort_by_key(|t| t.as_str());
    types.dedup();
    types
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> WebhookEndpoint {
        WebhookEndpoint::new(
            WebhookEndpointId::new(UnixMillis::new(1), [1; 10]),
            MerchantId::new(UnixMillis::new(1), [2; 10]),
            Mode::Test,
            "https://hooks.example/a".into(),
            vec![
                EventType::WebhookEndpointDisabled,
                EventType::PaymentStatusChanged,
                EventType::PaymentStatusChanged,
            ],
            Sealed {
                key_version: 1,
                bytes: vec![1],
            },
            UnixMillis::new(10),
        )
    }

    #[test]
    fn every_transition_is_the_next_version() {
        let e = endpoint();
        assert_eq!((e.version, e.status), (0, EndpointStatus::Enabled));
        assert_eq!(
            e.event_types,
            vec![EventType::PaymentStatusChanged, EventType::WebhookEndpointDisabled]
        );
        let paused = e.edited(
            None,
            Some(vec![EventType::PaymentStatusChanged]),
            Some(false),
            UnixMillis::new(20),
        );
        assert_eq!((paused.version, paused.updated_at), (1, UnixMillis::new(20)));
        assert_eq!(paused.status, EndpointStatus::Disabled);
        assert_eq!(paused.disabled_reason.as_deref(), Some(DISABLED_BY_MERCHANT));
        assert!(!paused.receives(EventType::PaymentStatusChanged));

        let failing = WebhookEndpoint::restore(EndpointFields {
            failing_since: Some(UnixMillis::new(15)),
            ..paused.fields().clone()
        });
        let enabled = failing.edited(
            Some("https://hooks.example/b".into()),
            None,
            Some(true),
            UnixMillis::new(30),
        );
        assert_eq!(
            (enabled.version, enabled.failing_since, enabled.disabled_reason.clone()),
            (2, None, None)
        );
        assert_eq!(enabled.url, "https://hooks.example/b");
        assert!(enabled.receives(EventType::PaymentStatusChanged));
        assert_eq!(enabled.deleted(UnixMillis::new(40)).status, EndpointStatus::Deleted);
    }

    #[test]
    fn a_rolled_secret_keeps_the_previous_one_signing_until_it_expires() {
        let e = endpoint();
        let new = Sealed {
            key_version: 1,
            bytes: vec![2],
        };
        let rolled = e.secret_rolled(new.clone(), UnixMillis::new(100), UnixMillis::new(20));
        assert_eq!(rolled.version, 1);
        assert_eq!(
            rolled.signing_secrets(UnixMillis::new(99)),
            vec![new.clone(), e.secret.clone()]
        );
        assert_eq!(rolled.signing_secrets(UnixMillis::new(100)), vec![new]);
    }
}
