pub mod crds;
pub mod operator;
pub mod validate;
