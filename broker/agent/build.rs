//! Generates the `runnel.agent.v1.Agent` gRPC server and client from hand-written message
//! types (src/proto.rs), so building needs no `protoc`.

fn main() {
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(format!("crate::proto::{input}"))
            .output_type(format!("crate::proto::{output}"))
            .codec_path("tonic_prost::ProstCodec")
            .build()
    };
    let service = tonic_build::manual::Service::builder()
        .name("Agent")
        .package("runnel.agent.v1")
        .comment("Sidecar agent of one broker pod, called by the operator.")
        .method(method(
            "health",
            "Health",
            "HealthRequest",
            "HealthResponse",
        ))
        .method(method(
            "broker_status",
            "BrokerStatus",
            "BrokerStatusRequest",
            "BrokerStatusResponse",
        ))
        .method(method(
            "can_restart",
            "CanRestart",
            "CanRestartRequest",
            "CanRestartResponse",
        ))
        .method(
            tonic_build::manual::Method::builder()
                .name("drain")
                .route_name("Drain")
                .input_type("crate::proto::DrainRequest")
                .output_type("crate::proto::DrainProgress")
                .codec_path("tonic_prost::ProstCodec")
                .server_streaming()
                .build(),
        )
        .method(method(
            "cancel_drain",
            "CancelDrain",
            "CancelDrainRequest",
            "CancelDrainResponse",
        ))
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
    println!("cargo:rerun-if-changed=build.rs");
}
