//! Every opcode the unpickler accepts, each building what Python would build.

use std::collections::HashSet;

use super::support::{run, show, UNSUPPORTED};
use crate::model::torch::pickle::opcodes::*;
use crate::model::torch::pth_writer::{cat, global, k1, storage, su};

/// One accepted opcode each: `(opcode, pickle, what it builds)`.
fn accepted_cases() -> Vec<(u8, Vec<u8>, &'static str)> {
    let k = |v: u8| [BININT1, v];
    vec![
        (PROTO, vec![PROTO, 2, NONE, STOP], "None"),
        (
            FRAME,
            cat(&[&[PROTO, 4, FRAME], &2u64.to_le_bytes(), &[NONE, STOP]]),
            "None",
        ),
        (STOP, vec![NEWTRUE, NONE, STOP], "None"),
        (
            MARK,
            cat(&[&[MARK], &k(1), &k(2), &[TUPLE, STOP]]),
            "(1, 2)",
        ),
        (EMPTY_DICT, vec![EMPTY_DICT, STOP], "{}"),
        (EMPTY_LIST, vec![EMPTY_LIST, STOP], "[]"),
        (EMPTY_TUPLE, vec![EMPTY_TUPLE, STOP], "()"),
        (EMPTY_SET, vec![EMPTY_SET, STOP], "<set>"),
        (
            ADDITEMS,
            cat(&[&[EMPTY_SET, MARK], &k(1), &k(2), &[ADDITEMS, STOP]]),
            "<set>",
        ),
        (TUPLE, vec![MARK, TUPLE, STOP], "()"),
        (TUPLE1, cat(&[&k(1), &[TUPLE1, STOP]]), "(1,)"),
        (TUPLE2, cat(&[&k(1), &k(2), &[TUPLE2, STOP]]), "(1, 2)"),
        (
            TUPLE3,
            cat(&[&k(1), &k(2), &k(3), &[TUPLE3, STOP]]),
            "(1, 2, 3)",
        ),
        (LIST, cat(&[&[MARK], &k(1), &k(2), &[LIST, STOP]]), "[1, 2]"),
        (
            DICT,
            cat(&[&[MARK], &su("a"), &k(1), &su("b"), &k(2), &[DICT, STOP]]),
            "{'a': 1, 'b': 2}",
        ),
        (
            FROZENSET,
            cat(&[&[MARK], &k(1), &[FROZENSET, STOP]]),
            "<frozenset>",
        ),
        (APPEND, cat(&[&[EMPTY_LIST], &k(1), &[APPEND, STOP]]), "[1]"),
        (
            APPENDS,
            cat(&[&[EMPTY_LIST, MARK], &k(1), &k(2), &[APPENDS, STOP]]),
            "[1, 2]",
        ),
        (
            SETITEM,
            cat(&[&[EMPTY_DICT], &su("a"), &k(1), &[SETITEM, STOP]]),
            "{'a': 1}",
        ),
        (
            SETITEMS,
            cat(&[
                &[EMPTY_DICT, MARK],
                &su("a"),
                &k(1),
                &su("b"),
                &k(2),
                &[SETITEMS, STOP],
            ]),
            "{'a': 1, 'b': 2}",
        ),
        (POP, cat(&[&k(1), &k(2), &[POP, STOP]]), "1"),
        (
            POP_MARK,
            cat(&[&k(1), &[MARK], &k(2), &k(3), &[POP_MARK, STOP]]),
            "1",
        ),
        (DUP, cat(&[&k(7), &[DUP, TUPLE2, STOP]]), "(7, 7)"),
        (NONE, vec![NONE, STOP], "None"),
        (NEWTRUE, vec![NEWTRUE, STOP], "True"),
        (NEWFALSE, vec![NEWFALSE, STOP], "False"),
        (BININT, vec![BININT, 0xfe, 0xff, 0xff, 0xff, STOP], "-2"),
        (BININT1, vec![BININT1, 0xff, STOP], "255"),
        (BININT2, vec![BININT2, 0x01, 0x02, STOP], "513"),
        (LONG1, vec![LONG1, 2, 0x00, 0x80, STOP], "-32768"),
        (
            LONG4,
            vec![LONG4, 3, 0, 0, 0, 0x01, 0x00, 0x01, STOP],
            "65537",
        ),
        (INT, b"I-42\n.".to_vec(), "-42"),
        (LONG, b"L123L\n.".to_vec(), "123"),
        (
            BINFLOAT,
            vec![BINFLOAT, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, STOP],
            "1.5",
        ),
        (FLOAT, b"F-0.25\n.".to_vec(), "-0.25"),
        (
            BINUNICODE,
            cat(&[&[BINUNICODE, 6, 0, 0, 0], "héllo".as_bytes(), &[STOP]]),
            "'héllo'",
        ),
        (SHORT_BINUNICODE, cat(&[&su("ab"), &[STOP]]), "'ab'"),
        (
            BINUNICODE8,
            cat(&[&[BINUNICODE8], &3u64.to_le_bytes(), b"xyz", &[STOP]]),
            "'xyz'",
        ),
        (UNICODE, b"Vabc\n.".to_vec(), "'abc'"),
        (STRING, b"S'abc'\n.".to_vec(), "<bytes>"),
        (
            BINSTRING,
            cat(&[&[BINSTRING, 3, 0, 0, 0], b"abc", &[STOP]]),
            "<bytes>",
        ),
        (
            SHORT_BINSTRING,
            cat(&[&[SHORT_BINSTRING, 2], b"ab", &[STOP]]),
            "<bytes>",
        ),
        (
            BINBYTES,
            cat(&[&[BINBYTES, 1, 0, 0, 0], b"a", &[STOP]]),
            "<bytes>",
        ),
        (SHORT_BINBYTES, vec![SHORT_BINBYTES, 0, STOP], "<bytes>"),
        (
            BINBYTES8,
            cat(&[&[BINBYTES8], &2u64.to_le_bytes(), b"ab", &[STOP]]),
            "<bytes>",
        ),
        (
            BYTEARRAY8,
            cat(&[&[BYTEARRAY8], &1u64.to_le_bytes(), b"a", &[STOP]]),
            "<bytes>",
        ),
        (
            GLOBAL,
            cat(&[&global("torch", "FloatStorage"), &[STOP]]),
            "<class torch.FloatStorage>",
        ),
        (
            STACK_GLOBAL,
            cat(&[
                &su("collections"),
                &su("OrderedDict"),
                &[STACK_GLOBAL, STOP],
            ]),
            "<class collections.OrderedDict>",
        ),
        (
            BINPERSID,
            cat(&[&storage("HalfStorage", "17", 4), &[STOP]]),
            "<storage 17 F16>",
        ),
        (
            REDUCE,
            cat(&[
                &global("collections", "OrderedDict"),
                &[EMPTY_TUPLE, REDUCE, STOP],
            ]),
            "{}",
        ),
        (
            NEWOBJ,
            cat(&[
                &global("yacs.config", "CfgNode"),
                &[EMPTY_TUPLE, NEWOBJ, STOP],
            ]),
            "<yacs.config.CfgNode>",
        ),
        (
            NEWOBJ_EX,
            cat(&[
                &global("a", "B"),
                &[EMPTY_TUPLE, EMPTY_DICT, NEWOBJ_EX, STOP],
            ]),
            "<a.B>",
        ),
        (
            BUILD,
            cat(&[&[EMPTY_DICT], &su("state"), &[BUILD, STOP]]),
            "{}",
        ),
        // Memo: a list memoized empty, then filled, reads back filled.
        (
            BINPUT,
            cat(&[
                &[EMPTY_LIST, BINPUT, 3],
                &k(1),
                &[APPEND, POP, BINGET, 3, STOP],
            ]),
            "[1]",
        ),
        (
            BINGET,
            cat(&[&k(5), &[BINPUT, 0, BINGET, 0, TUPLE2, STOP]]),
            "(5, 5)",
        ),
        (
            LONG_BINPUT,
            cat(&[
                &[EMPTY_DICT, LONG_BINPUT, 0x70, 0x11, 0x01, 0x00],
                &su("k"),
                &k(2),
                &[SETITEM, POP, LONG_BINGET, 0x70, 0x11, 0x01, 0x00, STOP],
            ]),
            "{'k': 2}",
        ),
        (
            LONG_BINGET,
            cat(&[
                &k(9),
                &[LONG_BINPUT, 0xff, 0xff, 0xff, 0xff],
                &[LONG_BINGET, 0xff, 0xff, 0xff, 0xff, TUPLE2, STOP],
            ]),
            "(9, 9)",
        ),
        (PUT, cat(&[&k(4), b"p12\n0g12\n."]), "4"),
        (GET, cat(&[&k(4), b"p0\ng0\n\x86."]), "(4, 4)"),
        // MEMOIZE numbers slots 0, 1, … in order.
        (
            MEMOIZE,
            cat(&[
                &[EMPTY_DICT, MEMOIZE, NONE, MEMOIZE, POP, POP],
                &[BINGET, 1, BINGET, 0, TUPLE2, STOP],
            ]),
            "(None, {})",
        ),
    ]
}

#[test]
fn opcode_constants_cover_the_protocol() {
    let named: Vec<u8> = (0..=255u8)
        .filter(|&op| opcode_name(op).is_some())
        .collect();
    // pickletools.opcodes has 68 entries (protocols 0 to 5).
    assert_eq!(named.len(), 68);
    assert_eq!(opcode_name(PROTO), Some("PROTO"));
    assert_eq!(opcode_name(EMPTY_DICT), Some("EMPTY_DICT"));
    assert_eq!(opcode_name(b'}'), Some("EMPTY_DICT"));
    assert_eq!(opcode_name(0x99), None);
    assert_eq!(opcode_name(0), None);
}

#[test]
fn every_opcode_is_either_accepted_and_tested_or_refused() {
    let tested: HashSet<u8> = accepted_cases().iter().map(|c| c.0).collect();
    for op in 0..=255u8 {
        if let Some(name) = opcode_name(op) {
            assert!(
                tested.contains(&op) != UNSUPPORTED.contains(&op),
                "{name}: tested {}, refused {}",
                tested.contains(&op),
                UNSUPPORTED.contains(&op)
            );
        }
    }
}

#[test]
fn accepted_opcodes_build_what_python_would() {
    for (op, pickle, expected) in accepted_cases() {
        let name = opcode_name(op).unwrap();
        assert!(pickle.contains(&op), "{name}: case does not use it");
        match run(&pickle) {
            Ok(v) => assert_eq!(show(&v), expected, "{name}"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn integer_and_text_variants() {
    for (pickle, expected) in [
        (vec![LONG1, 0, STOP], "0"),
        (vec![LONG1, 1, 0xff, STOP], "-1"),
        (vec![LONG1, 1, 0x7f, STOP], "127"),
        (
            cat(&[&[LONG1, 8], &i64::MIN.to_le_bytes(), &[STOP]]),
            "-9223372036854775808",
        ),
        // Beyond 8 bytes: an int we do not represent.
        (cat(&[&[LONG1, 9], &[0; 9], &[STOP]]), "<int>"),
        (cat(&[&[LONG4, 9, 0, 0, 0], &[1; 9], &[STOP]]), "<int>"),
        (vec![BININT, 0xff, 0xff, 0xff, 0x7f, STOP], "2147483647"),
        (b"I00\n.".to_vec(), "False"),
        (b"I01\n.".to_vec(), "True"),
        (b"I7\n.".to_vec(), "7"),
        (b"L-5\n.".to_vec(), "-5"),
        (b"L99999999999999999999999L\n.".to_vec(), "<int>"),
        (b"F1e3\n.".to_vec(), "1000.0"),
        (b"V\n.".to_vec(), "''"),
        (cat(&[&su(""), &[STOP]]), "''"),
    ] {
        assert_eq!(show(&run(&pickle).unwrap()), expected, "{pickle:02x?}");
    }
}

#[test]
fn reduce_and_newobj_of_known_and_unknown_callables() {
    for (pickle, expected) in [
        (
            cat(&[&global("builtins", "dict"), &[EMPTY_TUPLE, REDUCE, STOP]]),
            "{}",
        ),
        (
            cat(&[&global("__builtin__", "dict"), &[EMPTY_TUPLE, REDUCE, STOP]]),
            "{}",
        ),
        (
            cat(&[
                &global("some.module", "Thing"),
                &[EMPTY_TUPLE, REDUCE, STOP],
            ]),
            "<some.module.Thing>",
        ),
        // A callable that is not a class: opaque.
        (cat(&[&k1(3), &[EMPTY_TUPLE, REDUCE, STOP]]), "<reduce>"),
        (
            cat(&[
                &global("collections", "OrderedDict"),
                &[EMPTY_TUPLE, NEWOBJ, STOP],
            ]),
            "{}",
        ),
        // Opaque objects absorb items, appends and state.
        (
            cat(&[
                &global("yacs.config", "CfgNode"),
                &[EMPTY_TUPLE, NEWOBJ, MARK],
                &su("a"),
                &k1(1),
                &[SETITEMS],
                &su("b"),
                &k1(2),
                &[SETITEM, MARK],
                &k1(3),
                &[APPENDS],
                &k1(4),
                &[APPEND, EMPTY_DICT, BUILD, STOP],
            ]),
            "<yacs.config.CfgNode>",
        ),
    ] {
        assert_eq!(show(&run(&pickle).unwrap()), expected);
    }
}
