pub mod scaled_object;
