pub mod billing;
pub mod billing_pages;
pub mod encryption_keys;
pub mod health;
pub mod hosted;
pub mod merchants;
pub mod payments;
pub mod webhooks;
