fn main() {
    print!("{}", keda_api::crd::all_yaml().unwrap_or_default());
}
