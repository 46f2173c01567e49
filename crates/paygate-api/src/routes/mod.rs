pub mod encryption_keys;
pub mod health;
pub mod merchants;
pub mod payments;
pub mod webhooks;
