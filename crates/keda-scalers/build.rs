//! Generates the `externalscaler` gRPC client (and the server trait the tests' protocol peer
//! implements) with a vendored protoc, so a fresh machine needs no system protoc. Only with the
//! `external` feature: other builds need neither protoc nor tonic.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "external")]
    {
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_with_config(config, &["proto/externalscaler.proto"], &["proto"])?;
        println!("cargo:rerun-if-changed=proto/externalscaler.proto");
    }
    Ok(())
}
