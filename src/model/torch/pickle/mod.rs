//! A tolerant unpickler for the `data.pkl` of a torch checkpoint.
//!
//! Checkpoints saved by the official training script (`utils.save_checkpoint`) hold
//! `'config': yacs.config.CfgNode`, a `dict` subclass the pickle rebuilds with `NEWOBJ` followed
//! by `SETITEMS`. Here every object of a class we do not know becomes an
//! opaque container that accepts items and state and is otherwise ignored; only tensors
//! (`torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` over a persistent-id storage) and the
//! plain containers around them (dict, `collections.OrderedDict`, list, tuple) are interpreted.
//!
//! Containers are shared (`Rc<RefCell<…>>`) as in CPython, so a memoized dict that is filled after
//! being memoized reads back filled.
//!
//! In four parts: [`opcodes`] (the protocol's opcodes and their names), [`value`] (what the
//! unpickler builds), [`unpickler`] (the machine: its stack, its memo, one arm per opcode) and
//! [`tensors`] (the tensors of the result, by dotted path).

pub mod opcodes;
mod tensors;
mod unpickler;
mod value;

pub(crate) use tensors::parse_tensors;

#[cfg(test)]
mod tests;
