//! A tolerant reader for the ZIP checkpoints `torch.save` writes (see [`super::checkpoint`] for
//! why `pytorch-reader` is not used for them), in three parts:
//!
//! * [`archive`]: the ZIP container (`{root}/data.pkl`, `{root}/byteorder`, `{root}/data/{key}`),
//!   uncompressed storages borrowed in place with their recorded CRC-32 checked;
//! * [`pickle`]: the unpickler for `data.pkl`, which keeps only the tensors (strided views of
//!   storages named by persistent ids) and the plain containers around them;
//! * [`strided`]: gathering a tensor's elements from its storage bytes, as f32.
//!
//! [`pth_writer`] (tests and the `test-util` feature only) writes such files, for the tests and
//! the fuzz corpus.
//!
//! Every failure is a [`TorchFileError`]; [`super::checkpoint`] turns it into a
//! [`super::ModelError::Format`] naming the file.

mod archive;
mod error;
mod pickle;
#[cfg(any(test, feature = "test-util"))]
pub mod pth_writer;
mod strided;

pub(crate) use archive::TorchZip;
pub(crate) use error::TorchFileError;
pub(crate) use pickle::parse_tensors;
pub(crate) use strided::{materialize, TensorRef};
