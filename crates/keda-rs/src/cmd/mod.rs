pub mod crds;
pub mod operator;
pub mod scalers;
pub mod validate;
