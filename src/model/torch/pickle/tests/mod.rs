//! Unit tests of the unpickler: every opcode it accepts builds what Python would ([`accepted`]),
//! every malformed or unsupported pickle is refused with its error ([`refused`]), and the tensors
//! are found where a state dict puts them ([`tensors`]). The pickles are written with
//! [`crate::model::torch::pth_writer`].

mod accepted;
mod refused;
mod support;
mod tensors;
