//! Compiles `proto/` with `protox` (pure Rust, no system `protoc`) and generates the tonic
//! server and client code into `OUT_DIR`, plus a descriptor set for server reflection.
//! Messages holding secrets are generated without `Debug` (see `REDACTED`).

use std::{env, error::Error, path::PathBuf};

/// Messages with a password, OTP or TOTP secret field: no derived `Debug`, so no log line or
/// panic message can print the secret; `src/api/redact.rs` implements `Debug` for each.
const REDACTED: [&str; 6] = [
    ".clientele.v1.AuthenticateRequest",
    ".clientele.v1.EnrollTotpResponse",
    ".clientele.v1.ConfirmTotpRequest",
    ".clientele.v1.SetPasswordRequest",
    ".clientele.v1.CreateCustomerUserRequest",
    ".clientele.v1.CreateCustomerUserResponse",
];

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
        // Messages holding secrets get a hand-written, redacting `Debug` (src/api/redact.rs).
        .skip_debug(REDACTED)
        // prost's codec, encoding each message into a buffer of its exact length.
        .codec_path("crate::api::codec::ExactCodec")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
