//! Clientele: the customer-user subsystem of OTRS / Znuny / OTOBO as a gRPC service.
//!
//! Layers: [`api`] (protobuf, thin handlers) -> [`directory`] (the source multiplexer) ->
//! [`source`] (capability traits, SQL and LDAP backends) over plain [`domain`] types. Errors are
//! [`error::Error`], mapped to gRPC statuses in [`api::status`] only. Time is read from a
//! [`clock::Clock`] handed in when the [`app`] is built.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod directory;
pub mod domain;
pub mod edge;
pub mod error;
pub mod source;
pub mod telemetry;
/// The seed data set, kept at its old path (it lives with SQL administration).
pub use source::sql::seed;

/// Generated protobuf messages, tonic servers and clients of `clientele.v1`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("clientele.v1");

    /// The encoded descriptor set of `proto/`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/clientele_descriptor.bin"));
}
