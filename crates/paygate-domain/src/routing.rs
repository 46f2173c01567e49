//! Acquirer routing: which acquirer takes a card, by the merchant's contracts.

use crate::card::CardNumber;
use crate::payment::Route;

/// One routing rule of a merchant's acquirer contract: cards whose number starts with `bin_prefix` go to
/// `acquirer` under the merchant's number there. An empty prefix is the fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquirerContract {
    bin_prefix: String,
    acquirer: String,
    acquirer_merchant_id: String,
}

impl AcquirerContract {
    pub fn new(bin_prefix: String, acquirer: String, acquirer_merchant_id: String) -> AcquirerContract {
        AcquirerContract {
            bin_prefix,
            acquirer,
            acquirer_merchant_id,
        }
    }

    pub fn bin_prefix(&self) -> &str {
        &self.bin_prefix
    }

    pub fn acquirer(&self) -> &str {
        &self.acquirer
    }

    pub fn acquirer_merchant_id(&self) -> &str {
        &self.acquirer_merchant_id
    }

    /// The route of a card: the contract with the longest matching BIN prefix, else the fallback (empty prefix).
    pub fn choose(contracts: &[AcquirerContract], card: &CardNumber) -> Option<Route> {
        contracts
            .iter()
            .filter(|c| card.expose_digits().starts_with(&c.bin_prefix))
            .max_by_key(|c| c.bin_prefix.len())
            .map(|c| Route {
                acquirer: c.acquirer.clone(),
                acquirer_merchant_id: c.acquirer_merchant_id.clone(),
            })
    }
}
