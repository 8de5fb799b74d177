//! [`TorchFileError`]: what the torch ZIP reader refuses, by part (pickle, ZIP container, tensor
//! views).

/// What is wrong with a `torch.save` ZIP checkpoint.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TorchFileError {
    // --- pickle (`data.pkl`) ---
    /// The pickle ends inside an opcode's argument, or before `STOP`.
    #[error("pickle ends unexpectedly (reading at byte {offset})")]
    Truncated {
        /// Where the read that failed started.
        offset: usize,
    },
    /// A text argument (protocol 0 opcodes) has no terminating newline.
    #[error("pickle ends inside a text line (starting at byte {offset})")]
    UnterminatedLine {
        /// Where the line starts.
        offset: usize,
    },
    /// A binary unicode string is not UTF-8.
    #[error("invalid UTF-8 string in pickle")]
    InvalidUtf8,
    /// An opcode of the pickle protocol that this reader does not implement.
    #[error("unsupported pickle opcode 0x{opcode:02x} ({name}) at byte {offset}")]
    UnsupportedOpcode {
        /// Its `pickletools` name.
        name: &'static str,
        /// Its byte.
        opcode: u8,
        /// Where it is.
        offset: usize,
    },
    /// A byte that is no pickle opcode.
    #[error("unsupported pickle opcode 0x{opcode:02x} at byte {offset}")]
    UnknownOpcode {
        /// The byte.
        opcode: u8,
        /// Where it is.
        offset: usize,
    },
    /// An opcode needs more stack items than there are (above the topmost mark).
    #[error("pickle stack underflow")]
    StackUnderflow,
    /// An opcode that collects the items above a `MARK` found none.
    #[error("pickle MARK missing")]
    MarkMissing,
    /// A memo read (`GET`, `BINGET`, `LONG_BINGET`) of a slot never written.
    #[error("pickle memo {index} missing")]
    MemoMissing {
        /// The slot.
        index: u32,
    },
    /// The text argument of `INT`, `FLOAT`, `PUT` or `GET` does not parse.
    #[error("bad {what}")]
    BadTextArgument {
        /// `INT`, `FLOAT`, `PUT index` or `GET index`.
        what: &'static str,
    },
    /// `DICT` or `SETITEMS` with an odd number of items (keys without values).
    #[error("odd number of items for {opcode} ({items})")]
    OddItems {
        /// `DICT` or `SETITEMS`.
        opcode: &'static str,
        /// How many there were.
        items: usize,
    },
    /// `NEWOBJ` / `NEWOBJ_EX` with something other than a class and an argument tuple.
    #[error("{opcode} {what}: {found}")]
    BadNewObject {
        /// `NEWOBJ` or `NEWOBJ_EX`.
        opcode: &'static str,
        /// What is wrong.
        what: &'static str,
        /// What was found instead.
        found: String,
    },
    /// `STACK_GLOBAL` found something other than two strings.
    #[error("STACK_GLOBAL expects two strings")]
    StackGlobalNotStrings,
    /// `SETITEM` / `SETITEMS` on something that is neither a dict nor an opaque object.
    #[error("SETITEMS on {target}")]
    NotADict {
        /// What it was applied to.
        target: String,
    },
    /// `APPEND` / `APPENDS` on something that is neither a list nor an opaque object.
    #[error("APPENDS on {target}")]
    NotAList {
        /// What it was applied to.
        target: String,
    },
    /// A persistent id that is not a tuple.
    #[error("unexpected persistent id {pid}")]
    PersistentIdNotTuple {
        /// What it was.
        pid: String,
    },
    /// A persistent id tuple that is not `('storage', StorageClass, key, …)`.
    #[error("unexpected persistent id layout")]
    PersistentIdLayout,
    /// A storage class that is not one of torch's (`torch.FloatStorage`, …) with a supported
    /// element type.
    #[error("unsupported storage type {class}")]
    UnsupportedStorageType {
        /// The class name (`ComplexFloatStorage`, …).
        class: String,
    },
    /// A storage key that is neither a string nor an integer.
    #[error("storage key is not a string")]
    StorageKeyNotString,
    /// A tensor rebuild function called with arguments of the wrong shape.
    #[error("unexpected arguments to {function}")]
    BadRebuildArguments {
        /// `module.name` of the function.
        function: String,
    },
    /// A tensor's storage offset, size or stride is not made of non-negative integers.
    #[error("bad {what}")]
    BadTensorArgument {
        /// `storage offset`, `tensor size` or `tensor stride`.
        what: &'static str,
    },

    // --- ZIP container ---
    /// The file is not a ZIP archive the `zip` crate can open.
    #[error("not a ZIP archive: {0}")]
    NotZip(#[source] zip::result::ZipError),
    /// No `{root}/data.pkl`, `{root}` being the top folder of the first entry (as in `torch.load`).
    #[error("ZIP archive has no {expected}: not a torch.save checkpoint")]
    NoDataPkl {
        /// The entry looked for (escaped).
        expected: String,
    },
    /// The first entry is not in a folder: `torch.save` puts every entry under one top folder.
    #[error(
        "ZIP entry \"{name}\" is not in a folder: not a torch.save checkpoint (whose entries are all under one top folder)"
    )]
    NotInFolder {
        /// The entry's name (escaped).
        name: String,
    },
    /// An entry is missing or its header unreadable.
    #[error("entry {name}: {source}")]
    Entry {
        /// Full entry name.
        name: String,
        /// Why.
        source: zip::result::ZipError,
    },
    /// A compressed entry cannot be inflated.
    #[error("entry {name}: {source}")]
    EntryRead {
        /// Full entry name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A stored entry's data lie (partly) beyond the end of the file.
    #[error("entry {name} extends past the end of the file")]
    EntryPastEnd {
        /// Full entry name.
        name: String,
    },
    /// A compressed entry would inflate far beyond what the archive can hold (a ZIP bomb), or
    /// past the size its header declares.
    #[error(
        "entry {name} inflates to more than {limit} bytes (compressed archive of {archive} bytes)"
    )]
    EntryTooLarge {
        /// Full entry name.
        name: String,
        /// Bytes allowed.
        limit: u64,
        /// Size of the whole archive.
        archive: usize,
    },
    /// A stored entry's bytes do not have the CRC-32 the archive records.
    #[error("CRC-32 mismatch ({actual:08x}, archive says {expected:08x}): corrupted file")]
    CrcMismatch {
        /// CRC-32 of the bytes.
        actual: u32,
        /// CRC-32 the archive records.
        expected: u32,
    },
    /// The `byteorder` entry is neither `little` nor `big` (`torch.load`: "Unknown endianness type").
    #[error("unknown byte order \"{found}\" in the byteorder entry (expected little or big)")]
    UnknownByteOrder {
        /// What it holds (escaped).
        found: String,
    },

    // --- tensor views ---
    /// A tensor's size and stride have different lengths.
    #[error("size and stride lengths differ ({sizes} and {strides})")]
    RankMismatch {
        /// Number of sizes.
        sizes: usize,
        /// Number of strides.
        strides: usize,
    },
    /// The view reaches past the end of its storage.
    #[error("view reaches element {last} but the storage holds {available}")]
    StorageTooSmall {
        /// Last element the view reads.
        last: usize,
        /// Elements in the storage.
        available: usize,
    },
    /// Element count or reach of the view overflows `usize`.
    #[error("tensor view too large (size, stride and offset overflow)")]
    ViewOverflow,
    /// The tensor's elements cannot be allocated.
    #[error("cannot allocate {numel} elements for the tensor")]
    TooLarge {
        /// Elements of the view.
        numel: usize,
    },
}
