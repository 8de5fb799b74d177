//! The ZIP container `torch.save` writes: `{root}/data.pkl` (the pickled object),
//! `{root}/byteorder` (`little` / `big`, absent in old files) and one entry `{root}/data/{key}`
//! per storage, stored uncompressed. `{root}` is one folder: the top folder of the first entry, as
//! `torch.load` finds it.

use std::io::Read;

use super::strided::ByteOrder;
use super::TorchFileError;

/// An untrusted name or record for an error message: control characters escaped (Rust's
/// `escape_debug`), at most 100 characters.
fn escaped(s: &str) -> String {
    let mut out: String = s.chars().take(100).flat_map(char::escape_debug).collect();
    if s.chars().nth(100).is_some() {
        out.push('…');
    }
    out
}

/// A storage's bytes: borrowed from the file when stored uncompressed (as `torch.save` writes
/// them), with the CRC-32 the archive records for them still to be checked; else inflated.
pub(crate) enum StorageBytes<'a> {
    /// Uncompressed entry: the file's bytes, and the CRC-32 they must have.
    Stored(&'a [u8], u32),
    /// Compressed entry, inflated (and checked) by the zip reader.
    Inflated(Vec<u8>),
}

impl StorageBytes<'_> {
    /// The bytes, after checking the recorded CRC-32 of a stored entry.
    pub fn verified(&self) -> Result<&[u8], TorchFileError> {
        match self {
            StorageBytes::Stored(bytes, crc) => {
                let actual = crc32fast::hash(bytes);
                if actual != *crc {
                    return Err(TorchFileError::CrcMismatch {
                        actual,
                        expected: *crc,
                    });
                }
                Ok(bytes)
            }
            StorageBytes::Inflated(bytes) => Ok(bytes),
        }
    }
}

/// A torch ZIP checkpoint held in memory: its pickle and storages.
pub(crate) struct TorchZip<'a> {
    bytes: &'a [u8],
    archive: zip::ZipArchive<std::io::Cursor<&'a [u8]>>,
    /// Directory holding `data.pkl` and `data/` (the archive's root folder, e.g. `archive/`).
    prefix: String,
}

/// Most bytes one compressed entry of an archive of `archive_len` bytes may inflate to: 32× the
/// archive plus 64 MiB (float data compresses ~1.1×, pickles ~10×; a ZIP bomb reaches 1000×).
fn max_inflated(archive_len: usize) -> u64 {
    (archive_len as u64)
        .saturating_mul(32)
        .saturating_add(64 << 20)
}

impl<'a> TorchZip<'a> {
    /// Open the archive and find its root folder as `torch.load` does (PyTorch's
    /// `PyTorchFileReader`): the top folder of the archive's first entry, which must hold
    /// `data.pkl` (`{root}/data.pkl`, nowhere else).
    pub fn new(bytes: &'a [u8]) -> Result<Self, TorchFileError> {
        // torch.save never prepends data: a known offset of 0 avoids the zip crate's offset
        // detection, which rejects some valid torch archives.
        let config = zip::read::Config {
            archive_offset: zip::read::ArchiveOffset::Known(0),
        };
        let archive = zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes))
            .map_err(TorchFileError::NotZip)?;
        let first = match archive.name_for_index(0) {
            Some(Ok(name)) => name.into_owned(),
            Some(Err(e)) => return Err(TorchFileError::NotZip(e)),
            None => {
                return Err(TorchFileError::NoDataPkl {
                    expected: "<folder>/data.pkl".into(),
                })
            }
        };
        let Some((root, _)) = first.split_once('/') else {
            return Err(TorchFileError::NotInFolder {
                name: escaped(&first),
            });
        };
        let prefix = format!("{root}/");
        let data_pkl = format!("{prefix}data.pkl");
        if archive.index_for_name(&data_pkl).is_none() {
            return Err(TorchFileError::NoDataPkl {
                expected: escaped(&data_pkl),
            });
        }
        Ok(Self {
            bytes,
            archive,
            prefix,
        })
    }

    fn entry(&mut self, name: &str) -> Result<StorageBytes<'a>, TorchFileError> {
        let full = format!("{}{name}", self.prefix);
        let bytes = self.bytes;
        let mut f = match self.archive.by_name(&full) {
            Ok(f) => f,
            Err(source) => return Err(TorchFileError::Entry { name: full, source }),
        };
        if f.compression() == zip::CompressionMethod::Stored && !f.encrypted() {
            if let Some(start) = f.data_start() {
                let data = usize::try_from(start).ok().and_then(|start| {
                    let end = start.checked_add(usize::try_from(f.size()).ok()?)?;
                    bytes.get(start..end)
                });
                return match data {
                    Some(data) => Ok(StorageBytes::Stored(data, f.crc32())),
                    None => Err(TorchFileError::EntryPastEnd { name: full }),
                };
            }
        }
        // Compressed (torch itself stores entries uncompressed; a re-zipped file compresses): never
        // inflate past the declared size, nor past what any real checkpoint's ratio allows.
        let limit = f.size().min(max_inflated(bytes.len()));
        let too_large = |name: String| TorchFileError::EntryTooLarge {
            name,
            limit,
            archive: bytes.len(),
        };
        if f.size() > limit {
            return Err(too_large(full));
        }
        let mut buf = Vec::new();
        if let Err(source) = (&mut f).take(limit + 1).read_to_end(&mut buf) {
            return Err(TorchFileError::EntryRead { name: full, source });
        }
        if buf.len() as u64 > limit {
            return Err(too_large(full));
        }
        Ok(StorageBytes::Inflated(buf))
    }

    /// The byte order of the storages, from the `byteorder` entry as `torch.load` reads it:
    /// exactly `little` or `big`; absent (files older than PyTorch 1.10) means little-endian;
    /// anything else is refused ([`TorchFileError::UnknownByteOrder`]).
    pub fn byteorder(&mut self) -> Result<ByteOrder, TorchFileError> {
        let full = format!("{}byteorder", self.prefix);
        if self.archive.index_for_name(&full).is_none() {
            return Ok(ByteOrder::Little);
        }
        let entry = self.entry("byteorder")?;
        match entry.verified()? {
            b"little" => Ok(ByteOrder::Little),
            b"big" => Ok(ByteOrder::Big),
            other => Err(TorchFileError::UnknownByteOrder {
                found: escaped(&String::from_utf8_lossy(other)),
            }),
        }
    }

    /// The pickled object (`data.pkl`).
    pub fn pickle(&mut self) -> Result<Vec<u8>, TorchFileError> {
        Ok(self.entry("data.pkl")?.verified()?.to_vec())
    }

    /// Bytes of storage `key` (`data/{key}`).
    pub fn storage(&mut self, key: &str) -> Result<StorageBytes<'a>, TorchFileError> {
        self.entry(&format!("data/{key}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::torch::pth_writer::{zip_entries, CompressionMethod};

    const PICKLE: &[u8] = b"\x80\x02}q\x00.";

    /// A torch-like archive under `archive/` with storage `0` (stored) and `1` (deflated).
    fn torch_like() -> Vec<u8> {
        zip_entries(&[
            ("archive/data.pkl", PICKLE, CompressionMethod::Stored),
            ("archive/byteorder", b"little", CompressionMethod::Stored),
            (
                "archive/data/0",
                &[1, 2, 3, 4, 5],
                CompressionMethod::Stored,
            ),
            ("archive/data/1", &[9; 300], CompressionMethod::Deflated),
            ("archive/version", b"3\n", CompressionMethod::Stored),
        ])
    }

    /// Where `needle` first occurs in `hay`.
    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .expect("needle present")
    }

    #[test]
    fn reads_pickle_byteorder_and_storages() {
        let bytes = torch_like();
        let mut z = TorchZip::new(&bytes).unwrap();
        assert_eq!(z.prefix, "archive/");
        assert_eq!(z.byteorder().unwrap(), ByteOrder::Little);
        assert_eq!(z.pickle().unwrap(), PICKLE);
        let s0 = z.storage("0").unwrap();
        assert!(matches!(s0, StorageBytes::Stored(..)));
        assert_eq!(s0.verified().unwrap(), [1, 2, 3, 4, 5]);
        // Stored entries are borrowed from the file itself.
        let StorageBytes::Stored(slice, _) = s0 else {
            unreachable!()
        };
        let at = slice.as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(&bytes[at..at + 5], [1, 2, 3, 4, 5]);
        let s1 = z.storage("1").unwrap();
        assert!(matches!(s1, StorageBytes::Inflated(_)));
        assert_eq!(s1.verified().unwrap(), [9; 300]);
    }

    #[test]
    fn root_folder_is_the_first_entrys_top_folder() {
        // As torch.load: the top folder of the first entry, whatever its name, holds data.pkl.
        for entries in [
            &[("my_model/data.pkl", PICKLE), ("my_model/data/0", &[7][..])][..],
            &[
                ("m/.format_version", b"1"),
                ("m/data/0", &[7]),
                ("m/data.pkl", PICKLE),
            ],
            &[
                ("archive/", b""),
                ("archive/data.pkl", PICKLE),
                ("archive/data/0", &[7]),
            ],
        ] {
            let entries: Vec<_> = entries
                .iter()
                .map(|&(n, d)| (n, d, CompressionMethod::Stored))
                .collect();
            let bytes = zip_entries(&entries);
            let mut z = TorchZip::new(&bytes).unwrap();
            assert_eq!(z.pickle().unwrap(), PICKLE, "{:?}", entries[0].0);
            assert_eq!(z.storage("0").unwrap().verified().unwrap(), [7]);
        }
    }

    #[test]
    fn data_pkl_anywhere_but_the_root_folder_is_refused() {
        let stored = |entries: &[(&str, &[u8])]| {
            let entries: Vec<_> = entries
                .iter()
                .map(|&(n, d)| (n, d, CompressionMethod::Stored))
                .collect();
            zip_entries(&entries)
        };
        // Not in a folder (the old suffix match took "" as the root).
        let e = TorchZip::new(&stored(&[("data.pkl", PICKLE), ("data/0", &[7])]))
            .err()
            .expect("refused");
        assert!(
            matches!(&e, TorchFileError::NotInFolder { name } if name == "data.pkl"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "ZIP entry \"data.pkl\" is not in a folder: not a torch.save checkpoint \
             (whose entries are all under one top folder)"
        );
        for (entries, expected) in [
            // Nested one folder too deep.
            (
                &[("a/b/data.pkl", PICKLE), ("a/b/data/0", &[7][..])][..],
                "a/data.pkl",
            ),
            // In a second top folder.
            (&[("a/version", b"3"), ("b/data.pkl", PICKLE)], "a/data.pkl"),
            // Only a name that ends in data.pkl.
            (&[("archive/mydata.pkl", PICKLE)], "archive/data.pkl"),
            (&[("archive/x/data.pkl", PICKLE)], "archive/data.pkl"),
            // A name with control characters is escaped.
            (&[("\u{1b}[2J/x", b"")], "\\u{1b}[2J/data.pkl"),
        ] {
            let e = TorchZip::new(&stored(entries)).err().expect("refused");
            assert!(
                matches!(&e, TorchFileError::NoDataPkl { expected: x } if x == expected),
                "{entries:?}: {e:?}"
            );
        }
        // No entries at all.
        let e = TorchZip::new(&stored(&[])).err().expect("refused");
        assert_eq!(
            e.to_string(),
            "ZIP archive has no <folder>/data.pkl: not a torch.save checkpoint"
        );
    }

    #[test]
    fn deflated_pickle_is_inflated() {
        let bytes = zip_entries(&[("archive/data.pkl", PICKLE, CompressionMethod::Deflated)]);
        let mut z = TorchZip::new(&bytes).unwrap();
        assert_eq!(z.pickle().unwrap(), PICKLE);
    }

    #[test]
    fn a_zip_bomb_entry_is_refused_before_it_is_inflated() {
        // 100 MiB of zeros deflate to ~100 kB: far past 32 × the archive + 64 MiB.
        let zeros = vec![0u8; 100 << 20];
        let bytes = zip_entries(&[
            ("archive/data.pkl", PICKLE, CompressionMethod::Stored),
            ("archive/data/0", &zeros, CompressionMethod::Deflated),
        ]);
        assert!(bytes.len() < 1 << 20);
        let mut zip = TorchZip::new(&bytes).unwrap();
        match zip.storage("0") {
            Err(TorchFileError::EntryTooLarge { limit, .. }) => {
                assert!(limit < 100 << 20);
            }
            Err(other) => panic!("expected EntryTooLarge, got {other}"),
            Ok(_) => panic!("a ZIP bomb was inflated"),
        }
    }

    #[test]
    fn missing_data_pkl_is_refused() {
        let bytes = zip_entries(&[
            ("archive/data.pickle", PICKLE, CompressionMethod::Stored),
            ("archive/data/0", &[1], CompressionMethod::Stored),
        ]);
        let err = TorchZip::new(&bytes).err().expect("refused");
        assert!(matches!(err, TorchFileError::NoDataPkl { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "ZIP archive has no archive/data.pkl: not a torch.save checkpoint"
        );
    }

    #[test]
    fn not_a_zip_is_refused() {
        for bytes in [&b""[..], b"PK\x03\x04 truncated", &[0x80, 0x02, b'.']] {
            let err = TorchZip::new(bytes).err().expect("refused");
            assert!(matches!(err, TorchFileError::NotZip(_)), "{err:?}");
            assert!(err.to_string().starts_with("not a ZIP archive: "), "{err}");
        }
    }

    #[test]
    fn missing_storage_entry_names_the_entry() {
        let bytes = torch_like();
        let mut z = TorchZip::new(&bytes).unwrap();
        let err = z.storage("7").err().expect("refused");
        match &err {
            TorchFileError::Entry { name, source } => {
                assert_eq!(name, "archive/data/7");
                assert!(matches!(source, zip::result::ZipError::FileNotFound));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().starts_with("entry archive/data/7: "),
            "{err}"
        );
    }

    #[test]
    fn crc_mismatch_of_a_stored_entry_is_refused() {
        let mut bytes = torch_like();
        // Damage storage 0's data (after its local header), not the archive structure.
        let at = find(&bytes, &[1, 2, 3, 4, 5]);
        bytes[at + 2] ^= 0xff;
        let mut z = TorchZip::new(&bytes).unwrap();
        let s0 = z.storage("0").unwrap();
        let expected = crc32fast::hash(&[1, 2, 3, 4, 5]);
        let actual = crc32fast::hash(&[1, 2, 3 ^ 0xff, 4, 5]);
        match s0.verified() {
            Err(TorchFileError::CrcMismatch {
                actual: a,
                expected: e,
            }) => assert_eq!((a, e), (actual, expected)),
            other => panic!("{:?}", other.map(<[u8]>::to_vec)),
        }
        // The pickle is checked too.
        let mut bytes = torch_like();
        let at = find(&bytes, PICKLE);
        bytes[at + 3] ^= 0x01;
        let mut z = TorchZip::new(&bytes).unwrap();
        let err = z.pickle().unwrap_err();
        assert!(matches!(err, TorchFileError::CrcMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("CRC-32 mismatch"), "{err}");
    }

    #[test]
    fn byteorder_is_exactly_little_or_big_as_torch_load_reads_it() {
        for (contents, order) in [
            (&b"little"[..], Some(ByteOrder::Little)),
            (b"big", Some(ByteOrder::Big)),
            // torch.load: "Unknown endianness type" for anything else (no trimming).
            (b"big\n", None),
            (b"little\n", None),
            (b"", None),
            (b"LITTLE", None),
            (b"\x1b[2J\xff", None),
        ] {
            let bytes = zip_entries(&[
                ("archive/data.pkl", PICKLE, CompressionMethod::Stored),
                ("archive/byteorder", contents, CompressionMethod::Stored),
            ]);
            let mut z = TorchZip::new(&bytes).unwrap();
            match (z.byteorder(), order) {
                (Ok(got), Some(want)) => assert_eq!(got, want),
                (Err(TorchFileError::UnknownByteOrder { found }), None) => {
                    assert_eq!(found, escaped(&String::from_utf8_lossy(contents)));
                    assert!(!found.contains('\x1b'), "{found}");
                }
                (other, _) => panic!("{contents:?}: {other:?}"),
            }
        }
        let bytes = zip_entries(&[
            ("archive/data.pkl", PICKLE, CompressionMethod::Stored),
            ("archive/byteorder", b"big\n", CompressionMethod::Stored),
        ]);
        assert_eq!(
            TorchZip::new(&bytes)
                .unwrap()
                .byteorder()
                .unwrap_err()
                .to_string(),
            "unknown byte order \"big\\n\" in the byteorder entry (expected little or big)"
        );
        // Old files have no byteorder entry: little-endian.
        let bytes = zip_entries(&[("archive/data.pkl", PICKLE, CompressionMethod::Stored)]);
        let mut z = TorchZip::new(&bytes).unwrap();
        assert_eq!(z.byteorder().unwrap(), ByteOrder::Little);
    }

    #[test]
    fn stored_entry_past_the_end_of_the_file_is_refused() {
        let bytes = torch_like();
        // Keep the central directory (the archive opens) but claim storage 0 lies beyond the
        // end: the local header's data start is computed from the header the archive points at.
        let mut z = TorchZip::new(&bytes).unwrap();
        let short = &bytes[..];
        z.bytes = &short[..find(&bytes, &[1, 2, 3, 4, 5]) + 2];
        let err = z.storage("0").err().expect("refused");
        assert!(
            matches!(&err, TorchFileError::EntryPastEnd { name } if name == "archive/data/0"),
            "{err:?}"
        );
    }
}
