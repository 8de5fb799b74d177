//! The tensors of a pickle, found by dotted path: parameters, buffers, tensor subclasses, nested
//! containers, dict subclasses; and hostile bytes that must not panic.

use super::support::{err, run, show};
use crate::model::torch::pickle::opcodes::*;
use crate::model::torch::pickle::parse_tensors;
use crate::model::torch::pth_writer::{cat, global, ints, k1, storage, su, tensor_v2};
use crate::model::torch::TorchFileError;

#[test]
fn tensors_are_found_by_dotted_path() {
    // {'model': OrderedDict(w=tensor, b=Parameter(tensor), idx=…), 'epoch': 5,
    //  'config': CfgNode(…), 'optimizer': {'state': {0: tensor}}, 'buffers': [tensor]}
    let w = tensor_v2(&storage("FloatStorage", "0", 6), 0, &[2, 3], &[3, 1]);
    let b = cat(&[
        &global("torch._utils", "_rebuild_parameter"),
        &[MARK],
        &tensor_v2(&storage("HalfStorage", "1", 3), 1, &[2], &[1]),
        &[NEWTRUE],
        &global("collections", "OrderedDict"),
        &[EMPTY_TUPLE, REDUCE, TUPLE, REDUCE],
    ]);
    // Old-style `_rebuild_tensor` (no requires_grad / hooks).
    let idx = cat(&[
        &global("torch._utils", "_rebuild_tensor"),
        &[MARK],
        &storage("LongStorage", "2", 4),
        &[BININT1, 0],
        &ints(&[2, 2]),
        &ints(&[1, 2]),
        &[TUPLE, REDUCE],
    ]);
    let state_dict = cat(&[
        &global("collections", "OrderedDict"),
        &[EMPTY_TUPLE, REDUCE, BINPUT, 1, MARK],
        &su("w"),
        &w,
        &su("b"),
        &b,
        &su("idx"),
        &idx,
        &[SETITEMS],
        // OrderedDict._metadata
        &[EMPTY_DICT, BUILD],
    ]);
    let pickle = cat(&[
        &[PROTO, 2, EMPTY_DICT, BINPUT, 0, MARK],
        &su("model"),
        &state_dict,
        &su("epoch"),
        &k1(5),
        &su("config"),
        &global("yacs.config", "CfgNode"),
        &[EMPTY_TUPLE, NEWOBJ, MARK],
        &su("X"),
        &k1(1),
        &[SETITEMS, EMPTY_DICT, BUILD],
        &su("optimizer"),
        &[EMPTY_DICT],
        &su("state"),
        &[EMPTY_DICT, BININT1, 0],
        &tensor_v2(&storage("FloatStorage", "3", 1), 0, &[], &[]),
        &[SETITEM, SETITEM],
        &su("buffers"),
        &[EMPTY_LIST],
        &tensor_v2(&storage("BoolStorage", "4", 2), 0, &[2], &[1]),
        &[APPEND],
        // A non-string key is skipped, with what it holds.
        &k1(1),
        &[TUPLE1],
        &tensor_v2(&storage("FloatStorage", "5", 1), 0, &[], &[]),
        &[SETITEMS, STOP],
    ]);
    let tensors = parse_tensors(&pickle).unwrap();
    let got: Vec<String> = tensors
        .iter()
        .map(|(name, t)| {
            format!(
                "{name} {} {:?} +{} {:?} {:?}",
                t.storage.key, t.storage.dtype, t.offset, t.shape, t.stride
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "model.w 0 F32 +0 [2, 3] [3, 1]",
            "model.b 1 F16 +1 [2] [1]",
            "model.idx 2 I64 +0 [2, 2] [1, 2]",
            "optimizer.state.0 3 F32 +0 [] []",
            "buffers.0 4 Bool +0 [2] [1]",
        ]
    );
}

#[test]
fn tensor_subclasses_are_unwrapped() {
    // _rebuild_from_type_v2(func, new_type, args, state) = func(*args), nested.
    let inner = cat(&[
        &[MARK],
        &storage("FloatStorage", "0", 4),
        &[BININT1, 1],
        &ints(&[3]),
        &ints(&[1]),
        &[TUPLE],
    ]);
    let levels = 1000;
    let mut pickle = cat(&[
        &global("torch._tensor", "_rebuild_from_type_v2"),
        &[BINPUT, 0],
        &global("torch._utils", "_rebuild_tensor_v2"),
        &[BINPUT, 1, POP],
    ]);
    // Stack: from_type; then `levels` tuples (from_type | tensor_v2, None, inner, None).
    for level in (0..levels).rev() {
        pickle.extend([MARK, BINGET, u8::from(level == 0), NONE]);
    }
    pickle.extend(&inner);
    for _ in 0..levels {
        pickle.extend([NONE, TUPLE]);
    }
    pickle.extend([REDUCE, STOP]);
    assert_eq!(show(&run(&pickle).unwrap()), "<tensor 0 F32 +1 [3] [1]>");
    // Also under torch._utils, and as the argument of _rebuild_parameter.
    let pickle = cat(&[
        &global("torch._utils", "_rebuild_parameter_with_state"),
        &[MARK],
        &global("torch._utils", "_rebuild_from_type_v2"),
        &[MARK],
        &global("torch._utils", "_rebuild_tensor_v2"),
        &global("torch", "Tensor"),
        &inner,
        &[
            EMPTY_DICT, TUPLE, REDUCE, NEWFALSE, EMPTY_DICT, EMPTY_DICT, TUPLE,
        ],
        &[REDUCE, STOP],
    ]);
    assert_eq!(show(&run(&pickle).unwrap()), "<tensor 0 F32 +1 [3] [1]>");
}

#[test]
fn tensors_nested_deeper_than_the_walk_limit_are_ignored() {
    let tensor = tensor_v2(&storage("FloatStorage", "0", 1), 0, &[], &[]);
    for (depth, found) in [(0, true), (200, true), (201, false), (1000, false)] {
        let mut pickle = tensor.clone();
        pickle.extend(std::iter::repeat_n(TUPLE1, depth));
        pickle.push(STOP);
        let tensors = parse_tensors(&pickle).unwrap();
        assert_eq!(tensors.len(), usize::from(found), "depth {depth}");
        if found {
            assert_eq!(tensors[0].0, vec!["0"; depth].join("."));
        }
    }
}

#[test]
fn newobj_of_dict_classes_makes_a_dict_others_an_opaque_object() {
    let tensor = tensor_v2(&storage("FloatStorage", "0", 3), 0, &[3], &[1]);
    for (module, name, opcode) in [
        ("builtins", "dict", NEWOBJ),
        ("__builtin__", "dict", NEWOBJ),
        ("collections", "OrderedDict", NEWOBJ),
        ("builtins", "dict", NEWOBJ_EX),
        ("collections", "OrderedDict", NEWOBJ_EX),
    ] {
        let new = if opcode == NEWOBJ {
            vec![EMPTY_TUPLE, NEWOBJ]
        } else {
            vec![EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX]
        };
        let pickle = cat(&[
            &global(module, name),
            &new,
            &su("w"),
            &tensor,
            &[SETITEM, STOP],
        ]);
        assert_eq!(
            show(&run(&pickle).unwrap()),
            "{'w': <tensor 0 F32 +0 [3] [1]>}",
            "{module}.{name}"
        );
        let found = parse_tensors(&pickle).unwrap();
        assert_eq!(found.len(), 1, "{module}.{name}");
        assert_eq!(found[0].0, "w");
    }
    // A dict subclass we do not know (yacs CfgNode): opaque, its items ignored.
    let pickle = cat(&[
        &global("yacs.config", "CfgNode"),
        &[EMPTY_TUPLE, NEWOBJ],
        &su("w"),
        &tensor,
        &[SETITEM, STOP],
    ]);
    assert_eq!(show(&run(&pickle).unwrap()), "<yacs.config.CfgNode>");
    assert!(parse_tensors(&pickle).unwrap().is_empty());
    // As CPython: the class must be a class, the arguments a tuple.
    for (pickle, message) in [
        (
            vec![BININT1, 3, EMPTY_TUPLE, NEWOBJ, STOP],
            "NEWOBJ class argument isn't a class: Int(3)",
        ),
        (
            vec![NONE, EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX, STOP],
            "NEWOBJ_EX class argument isn't a class: None",
        ),
        (
            cat(&[&global("builtins", "dict"), &[NONE, NEWOBJ, STOP]]),
            "NEWOBJ expected an argument tuple: None",
        ),
        (
            cat(&[
                &global("a", "B"),
                &[EMPTY_LIST, EMPTY_DICT, NEWOBJ_EX, STOP],
            ]),
            "NEWOBJ_EX expected an argument tuple: List(0 items)",
        ),
    ] {
        let e = err(&pickle);
        assert!(matches!(e, TorchFileError::BadNewObject { .. }), "{e:?}");
        assert_eq!(e.to_string(), message);
    }
}

#[test]
fn storage_classes_must_be_torch_ones() {
    let with_class = |module: &str, class: &str| {
        cat(&[
            &[MARK],
            &su("storage"),
            &global(module, class),
            &su("0"),
            &su("cpu"),
            &[BININT1, 1, TUPLE, BINPERSID, STOP],
        ])
    };
    assert_eq!(
        show(&run(&with_class("torch", "FloatStorage")).unwrap()),
        "<storage 0 F32>"
    );
    // Files of old versions name CUDA storages; torch.load accepts them (and so do we).
    assert_eq!(
        show(&run(&with_class("torch.cuda", "HalfStorage")).unwrap()),
        "<storage 0 F16>"
    );
    for (module, class) in [
        ("os", "FloatStorage"),
        ("torch.storage", "FloatStorage"),
        ("", "FloatStorage"),
        ("torch", "UntypedStorage"),
    ] {
        let e = err(&with_class(module, class));
        assert!(
            matches!(&e, TorchFileError::UnsupportedStorageType { class: c } if *c == format!("{module}.{class}")),
            "{module}.{class}: {e:?}"
        );
    }
    assert_eq!(
        err(&with_class("os", "FloatStorage")).to_string(),
        "unsupported storage type os.FloatStorage"
    );
}

#[test]
fn hostile_bytes_never_panic() {
    // A cheap deterministic fuzz: random bytes, and a valid pickle with bytes flipped.
    let valid = cat(&[
        &[PROTO, 2, EMPTY_DICT, BINPUT, 0],
        &su("model"),
        &tensor_v2(&storage("FloatStorage", "0", 6), 0, &[2, 3], &[3, 1]),
        &[SETITEM, STOP],
    ]);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = (next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = parse_tensors(&bytes);
        let mut flipped = valid.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() as usize) % flipped.len();
            flipped[at] = next() as u8;
        }
        let _ = parse_tensors(&flipped);
    }
}
