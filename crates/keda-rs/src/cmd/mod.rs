pub mod crds;
pub mod validate;
