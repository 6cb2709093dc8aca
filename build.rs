//! Compiles `proto/` with `protox` (pure Rust, no system `protoc`) and generates the tonic
//! server and client code into `OUT_DIR`, plus a descriptor set for server reflection.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protos = [
        "proto/clientele/v1/common.proto",
        "proto/clientele/v1/customer_user.proto",
        "proto/clientele/v1/customer.proto",
        "proto/clientele/v1/group.proto",
        "proto/clientele/v1/auth.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("clientele_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
