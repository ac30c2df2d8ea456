pub mod scaled_object;
pub mod trigger_auth;
