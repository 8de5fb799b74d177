//! Generates the `swin.v1` and `inference` (Open Inference Protocol v2) gRPC code with tonic/prost from `proto/` using `protox` (a pure-Rust
//! protobuf compiler: no system `protoc`), and writes the file descriptor set for server reflection.
//! With the `mlu` feature it also builds the MagicMind shim (see `src/engine/mlu/build_support.rs`).

use std::path::PathBuf;

#[cfg(feature = "mlu")]
#[path = "src/engine/mlu/build_support.rs"]
mod mlu_build;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let fds = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(["swin/v1/classifier.proto", "inference/grpc_service.proto"])?
        .file_descriptor_set();
    std::fs::write(
        out_dir.join("swin_serve_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;

    #[cfg(feature = "mlu")]
    mlu_build::build()?;
    Ok(())
}
