//! Malformed, truncated and unsupported pickles, each refused with its own error.

use super::support::{err, run, show, UNSUPPORTED};
use crate::model::torch::pickle::opcodes::*;
use crate::model::torch::pickle::parse_tensors;
use crate::model::torch::pth_writer::{cat, global, ints, k1, storage, su, tensor_v2};
use crate::model::torch::TorchFileError;

#[test]
fn unknown_and_unsupported_opcodes_are_refused_with_their_offset() {
    let e = err(&[PROTO, 2, 0xff]);
    assert!(
        matches!(
            e,
            TorchFileError::UnknownOpcode {
                opcode: 0xff,
                offset: 2
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "unsupported pickle opcode 0xff at byte 2");
    for op in UNSUPPORTED {
        let e = err(&[NONE, POP, op, 0, 0, 0, 0, b'\n', STOP]);
        match e {
            TorchFileError::UnsupportedOpcode {
                name,
                opcode,
                offset: 2,
            } if opcode == op => assert_eq!(Some(name), opcode_name(op)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        err(&[EXT1, 1]).to_string(),
        "unsupported pickle opcode 0x82 (EXT1) at byte 0"
    );
}

#[test]
fn truncated_pickles_are_refused_at_every_cut() {
    let full = cat(&[
        &[PROTO, 4, FRAME],
        &100u64.to_le_bytes(),
        &[EMPTY_DICT, MEMOIZE],
        &su("model"),
        &tensor_v2(&storage("FloatStorage", "0", 6), 0, &[2, 3], &[3, 1]),
        &[
            SETITEM, MARK, BININT, 1, 2, 3, 4, BININT2, 1, 2, LONG1, 1, 5,
        ],
        &[
            BINFLOAT, 0, 0, 0, 0, 0, 0, 0, 0, BINUNICODE, 1, 0, 0, 0, b'x',
        ],
        &[
            BINUNICODE8,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            b'y',
            BINBYTES,
            0,
            0,
            0,
            0,
        ],
        &[LONG4, 1, 0, 0, 0, 7, BINPUT, 1, LONG_BINPUT, 2, 0, 0, 0],
        b"I3\nL4L\nF1.0\nVz\nS'w'\np3\ng3\n",
        &[BINGET, 1, LONG_BINGET, 2, 0, 0, 0, TUPLE, POP, STOP],
    ]);
    assert_eq!(parse_tensors(&full).unwrap().len(), 1);
    for cut in 0..full.len() {
        match run(&full[..cut]) {
            Err(TorchFileError::Truncated { offset }) => assert!(offset <= cut),
            Err(TorchFileError::UnterminatedLine { offset }) => assert!(offset <= cut),
            other => panic!("cut at {cut}: {:?}", other.map(|v| show(&v))),
        }
    }
    assert!(matches!(err(&[]), TorchFileError::Truncated { offset: 0 }));
    assert!(matches!(
        err(&[NONE]),
        TorchFileError::Truncated { offset: 1 }
    ));
    assert_eq!(
        err(&[NONE, BININT, 1, 2]).to_string(),
        "pickle ends unexpectedly (reading at byte 2)"
    );
    // Lengths far beyond the data, up to u64::MAX (the offset is that of the payload).
    for (pickle, at) in [
        (cat(&[&[BINUNICODE8], &u64::MAX.to_le_bytes()]), 9),
        (
            cat(&[&[BINBYTES8], &(u64::MAX / 2).to_le_bytes(), b"abc"]),
            9,
        ),
        (vec![BINUNICODE, 0xff, 0xff, 0xff, 0xff, b'a'], 5),
        (vec![LONG4, 0xff, 0xff, 0xff, 0xff, 1], 5),
        (vec![SHORT_BINBYTES, 10, 1, 2], 2),
    ] {
        let e = err(&pickle);
        assert!(
            matches!(e, TorchFileError::Truncated { offset } if offset == at),
            "{pickle:02x?}: {e:?}"
        );
    }
    assert!(matches!(
        err(b"cmodule\nname"),
        TorchFileError::UnterminatedLine { offset: 8 }
    ));
}

#[test]
fn stack_underflow_is_refused() {
    for pickle in [
        vec![STOP],
        vec![MARK, STOP],
        vec![BININT1, 1, TUPLE2, STOP],
        // A mark among a TUPLEn's items.
        vec![MARK, BININT1, 1, TUPLE2, STOP],
        vec![TUPLE1],
        vec![APPEND],
        vec![EMPTY_LIST, MARK, APPEND],
        vec![NONE, SETITEM],
        vec![POP],
        vec![DUP],
        vec![MARK, DUP],
        vec![NONE, REDUCE],
        vec![NONE, NEWOBJ],
        vec![NONE, NONE, NEWOBJ_EX],
        vec![NONE, BUILD],
        vec![BINPERSID],
        vec![NONE, STACK_GLOBAL],
        vec![MEMOIZE],
        vec![MARK, BINPUT, 0],
        vec![LONG_BINPUT, 0, 0, 0, 0],
        b"p0\n".to_vec(),
        vec![MARK, SETITEMS],
        vec![MARK, APPENDS],
    ] {
        let e = err(&pickle);
        assert!(
            matches!(e, TorchFileError::StackUnderflow),
            "{pickle:02x?}: {e:?}"
        );
    }
    assert_eq!(err(&[STOP]).to_string(), "pickle stack underflow");
}

#[test]
fn missing_mark_is_refused() {
    for op in [
        TUPLE, LIST, DICT, FROZENSET, APPENDS, ADDITEMS, SETITEMS, POP_MARK,
    ] {
        let e = err(&[EMPTY_LIST, BININT1, 1, op, STOP]);
        assert!(
            matches!(e, TorchFileError::MarkMissing),
            "{:?}: {e:?}",
            opcode_name(op)
        );
    }
    assert_eq!(err(&[TUPLE]).to_string(), "pickle MARK missing");
}

#[test]
fn memo_reads_of_unknown_slots_are_refused() {
    for (pickle, index) in [
        (vec![BINGET, 7], 7),
        (vec![NONE, BINPUT, 1, BINGET, 0], 0),
        (vec![LONG_BINGET, 0, 1, 0, 0], 256),
        (b"g9\n".to_vec(), 9),
    ] {
        let e = err(&pickle);
        assert!(
            matches!(e, TorchFileError::MemoMissing { index: i } if i == index),
            "{pickle:02x?}: {e:?}"
        );
    }
    assert_eq!(err(&[BINGET, 7]).to_string(), "pickle memo 7 missing");
}

#[test]
fn bad_text_arguments_and_strings_are_refused() {
    for (pickle, what) in [
        (&b"Iabc\n."[..], "INT"),
        (b"I\n.", "INT"),
        (b"Fx\n.", "FLOAT"),
        (b"NpX\n.", "PUT index"),
        (b"Np-1\n.", "PUT index"),
        (b"g4294967296\n.", "GET index"),
    ] {
        let e = err(pickle);
        assert!(
            matches!(e, TorchFileError::BadTextArgument { what: w } if w == what),
            "{pickle:?}: {e:?}"
        );
        assert_eq!(e.to_string(), format!("bad {what}"));
    }
    for pickle in [
        vec![SHORT_BINUNICODE, 1, 0xff, STOP],
        vec![BINUNICODE, 2, 0, 0, 0, 0xc3, 0x28, STOP],
    ] {
        assert!(matches!(err(&pickle), TorchFileError::InvalidUtf8));
    }
    let e = err(&[BININT1, 1, BININT1, 2, STACK_GLOBAL, STOP]);
    assert!(matches!(e, TorchFileError::StackGlobalNotStrings), "{e:?}");
}

#[test]
fn items_on_the_wrong_container_are_refused() {
    let e = err(&cat(&[&[EMPTY_LIST], &su("a"), &k1(1), &[SETITEM, STOP]]));
    assert_eq!(e.to_string(), "SETITEMS on List(0 items)");
    let e = err(&[EMPTY_TUPLE, MARK, BININT1, 1, APPENDS, STOP]);
    assert_eq!(e.to_string(), "APPENDS on Tuple(0 items)");
    let e = err(&[EMPTY_DICT, NONE, APPEND, STOP]);
    assert_eq!(e.to_string(), "APPENDS on Dict(0 items)");
    let e = err(&[BININT1, 3, MARK, SETITEMS, STOP]);
    assert_eq!(e.to_string(), "SETITEMS on Int(3)");
    // A list holding itself is described without following the cycle.
    let e = err(&[
        EMPTY_LIST, BINPUT, 0, BINGET, 0, APPEND, NONE, NONE, SETITEM,
    ]);
    assert_eq!(e.to_string(), "SETITEMS on List(1 items)");
}

#[test]
fn persistent_ids_other_than_torch_storages_are_refused() {
    let e = err(&cat(&[&su("x"), &[BINPERSID, STOP]]));
    assert!(matches!(e, TorchFileError::PersistentIdNotTuple { .. }));
    assert_eq!(e.to_string(), "unexpected persistent id Str(\"x\")");
    let e = err(&[EMPTY_LIST, BINPUT, 0, BINGET, 0, APPEND, BINPERSID]);
    assert_eq!(e.to_string(), "unexpected persistent id List(1 items)");
    for pid in [
        // Too short.
        cat(&[&su("storage"), &[TUPLE1]]),
        // Not a storage.
        cat(&[
            &su("module"),
            &global("torch", "FloatStorage"),
            &su("0"),
            &[TUPLE3],
        ]),
        // The class not a GLOBAL.
        cat(&[&su("storage"), &su("FloatStorage"), &su("0"), &[TUPLE3]]),
    ] {
        let e = err(&cat(&[&pid, &[BINPERSID, STOP]]));
        assert!(matches!(e, TorchFileError::PersistentIdLayout), "{e:?}");
    }
    let e = err(&cat(&[&storage("ComplexFloatStorage", "0", 1), &[STOP]]));
    assert_eq!(
        e.to_string(),
        "unsupported storage type torch.ComplexFloatStorage"
    );
    // Keys: a string or an int (as a string), nothing else.
    let with_key = |key: &[u8]| {
        cat(&[
            &[MARK],
            &su("storage"),
            &global("torch", "FloatStorage"),
            key,
            &su("cpu"),
            &[BININT1, 1, TUPLE, BINPERSID, STOP],
        ])
    };
    assert_eq!(show(&run(&with_key(&k1(7))).unwrap()), "<storage 7 F32>");
    let e = err(&with_key(&[NONE]));
    assert!(matches!(e, TorchFileError::StorageKeyNotString), "{e:?}");
}

#[test]
fn bad_tensor_rebuild_arguments_are_refused() {
    let call = |func: (&str, &str), args: &[u8]| {
        cat(&[
            &global(func.0, func.1),
            &[MARK],
            args,
            &[TUPLE, REDUCE, STOP],
        ])
    };
    let pid = storage("FloatStorage", "0", 4);
    let v2 = ("torch._utils", "_rebuild_tensor_v2");
    // Not a storage first.
    let e = err(&call(v2, &cat(&[&k1(0), &k1(0), &ints(&[1]), &ints(&[1])])));
    assert_eq!(
        e.to_string(),
        "unexpected arguments to torch._utils._rebuild_tensor_v2"
    );
    // Too few arguments.
    let e = err(&call(v2, &cat(&[&pid, &k1(0), &ints(&[1])])));
    assert!(
        matches!(e, TorchFileError::BadRebuildArguments { .. }),
        "{e:?}"
    );
    // Negative offset, size not a tuple, negative stride.
    let minus_one = [BININT, 0xff, 0xff, 0xff, 0xff];
    for (args, what) in [
        (
            cat(&[&pid, &minus_one, &ints(&[1]), &ints(&[1])]),
            "storage offset",
        ),
        (cat(&[&pid, &k1(0), &k1(1), &ints(&[1])]), "tensor size"),
        (
            cat(&[&pid, &k1(0), &ints(&[1]), &[MARK], &minus_one, &[TUPLE]]),
            "tensor stride",
        ),
    ] {
        let e = err(&call(v2, &args));
        assert!(
            matches!(e, TorchFileError::BadTensorArgument { what: w } if w == what),
            "{e:?}"
        );
    }
    // Sizes and strides may be lists too.
    let ok = call(
        v2,
        &cat(&[
            &pid,
            &k1(0),
            &[MARK, BININT1, 2, LIST],
            &[EMPTY_LIST, BININT1, 1, APPEND],
        ]),
    );
    assert_eq!(show(&run(&ok).unwrap()), "<tensor 0 F32 +0 [2] [1]>");
    // _rebuild_parameter of something that is not a tensor.
    let e = err(&call(
        ("torch._utils", "_rebuild_parameter"),
        &[NONE, NEWFALSE],
    ));
    assert!(
        matches!(e, TorchFileError::BadRebuildArguments { .. }),
        "{e:?}"
    );
    // _rebuild_from_type_v2 whose args are not a tuple.
    let e = err(&call(
        ("torch._tensor", "_rebuild_from_type_v2"),
        &cat(&[
            &global("torch._utils", "_rebuild_tensor_v2"),
            &[NONE, EMPTY_LIST, NONE],
        ]),
    ));
    assert_eq!(
        e.to_string(),
        "unexpected arguments to torch._tensor._rebuild_from_type_v2"
    );
}

#[test]
fn odd_numbers_of_dict_items_are_refused() {
    // As CPython: "odd number of items for DICT" / "... for SETITEMS", whatever the target.
    let e = err(&[MARK, BININT1, 1, DICT, STOP]);
    assert!(
        matches!(
            e,
            TorchFileError::OddItems {
                opcode: "DICT",
                items: 1
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "odd number of items for DICT (1)");
    let e = err(&[
        EMPTY_DICT, MARK, BININT1, 1, BININT1, 2, BININT1, 3, SETITEMS, STOP,
    ]);
    assert_eq!(e.to_string(), "odd number of items for SETITEMS (3)");
    // On an opaque object (yacs CfgNode) too.
    let e = err(&cat(&[
        &global("yacs.config", "CfgNode"),
        &[EMPTY_TUPLE, NEWOBJ, MARK, BININT1, 1, SETITEMS, STOP],
    ]));
    assert!(
        matches!(
            e,
            TorchFileError::OddItems {
                opcode: "SETITEMS",
                items: 1
            }
        ),
        "{e:?}"
    );
    // A key without its value no longer hides a tensor-less pair: even counts read as before.
    assert_eq!(
        show(&run(&[MARK, BININT1, 1, BININT1, 2, DICT, STOP]).unwrap()),
        "{1: 2}"
    );
    assert_eq!(show(&run(&[MARK, DICT, STOP]).unwrap()), "{}");
    assert_eq!(
        show(&run(&[EMPTY_DICT, MARK, SETITEMS, STOP]).unwrap()),
        "{}"
    );
}
