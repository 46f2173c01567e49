//! Picking the acquirer for a card from the merchant's contract: the longest matching BIN prefix, else the fallback.

use paygate_domain::api_key::Mode;
use paygate_domain::card::CardNumber;
use paygate_domain::id::MerchantId;
use paygate_domain::payment::Route;
use paygate_store::AcquirerContract;

use super::PaymentError;
use crate::App;

/// The sandbox contract every new merchant gets in test mode: 4330… → A, 5400… → B, 9400… → C, anything else → A.
pub fn default_test_contracts(merchant: MerchantId) -> Vec<AcquirerContract> {
    let suffix: String = merchant.to_string().chars().rev().take(8).collect();
    let contract = |prefix: &str, acquirer: &str| {
        AcquirerContract::new(prefix.to_owned(), acquirer.to_owned(), format!("{acquirer}{suffix}"))
    };
    vec![
        contract("", "A"),
        contract("4330", "A"),
        contract("5400", "B"),
        contract("9400", "C"),
    ]
}

pub(crate) fn choose(contracts: &[AcquirerContract], card: &CardNumber) -> Option<Route> {
    AcquirerContract::choose(contracts, card)
}

impl App {
    pub(crate) async fn route(
        &self,
        merchant: MerchantId,
        mode: Mode,
        card: &CardNumber,
    ) -> Result<Route, PaymentError> {
        let contracts = self.store().contracts(merchant, mode).await?;
        let route = choose(&contracts, card).ok_or(PaymentError::NoRoute)?;
        if self.acquirers.get(mode, &route.acquirer).is_none() {
            return Err(PaymentError::NoRoute);
        }
        Ok(route)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use paygate_domain::time::UnixMillis;

    #[test]
    fn longest_prefix_wins_with_fallback() {
        let merchant = MerchantId::new(UnixMillis::new(1), [1; 10]);
        let contracts = default_test_contracts(merchant);
        let cases = [
            ("4330000000000003", "A"),
            ("5400000000000005", "B"),
            ("9400000000000007", "C"),
            ("4111111111111111", "A"),
        ];
        for (number, acquirer) in cases {
            let card = CardNumber::parse(number).unwrap();
            assert_eq!(choose(&contracts, &card).unwrap().acquirer, acquirer, "{number}");
        }
        let no_fallback: Vec<_> = contracts.into_iter().filter(|c| !c.bin_prefix().is_empty()).collect();
        assert!(choose(&no_fallback, &CardNumber::parse("4111111111111111").unwrap()).is_none());
    }
}
