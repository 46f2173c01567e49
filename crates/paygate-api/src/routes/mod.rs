pub mod health;
pub mod merchants;
