//! Tensors as the pickle describes them (a strided view of a storage) and their
//! materialisation as f32.

use super::TorchFileError;

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Debug, Clone)]
pub(crate) struct StorageId {
    pub key: String,
    pub dtype: StorageDtype,
}

/// Byte order of a checkpoint's storages, from its `byteorder` entry: `torch.save` writes the
/// machine's native order and `torch.load` byte-swaps storages saved in the other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteOrder {
    Little,
    Big,
}

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageDtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDtype {
    /// The element type of a storage class (`torch.FloatStorage` → `FloatStorage`).
    pub fn from_storage_class(name: &str) -> Option<Self> {
        Some(match name {
            "DoubleStorage" => Self::F64,
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Decode consecutive elements of `bytes` in byte order `order` (a trailing partial element
    /// is ignored) onto `out`.
    fn decode_into(self, bytes: &[u8], order: ByteOrder, out: &mut Vec<f32>) {
        let big = order == ByteOrder::Big;
        match self {
            Self::F64 => decode_elements::<8>(bytes, big, out, |b| f64::from_le_bytes(b) as f32),
            Self::F32 => decode_elements::<4>(bytes, big, out, f32::from_le_bytes),
            Self::F16 => {
                decode_elements::<2>(bytes, big, out, |b| half::f16::from_le_bytes(b).to_f32())
            }
            Self::BF16 => {
                decode_elements::<2>(bytes, big, out, |b| half::bf16::from_le_bytes(b).to_f32())
            }
            Self::I64 => decode_elements::<8>(bytes, big, out, |b| i64::from_le_bytes(b) as f32),
            Self::I32 => decode_elements::<4>(bytes, big, out, |b| i32::from_le_bytes(b) as f32),
            Self::I16 => decode_elements::<2>(bytes, big, out, |b| i16::from_le_bytes(b) as f32),
            Self::I8 => decode_elements::<1>(bytes, big, out, |b| i8::from_le_bytes(b) as f32),
            Self::U8 | Self::Bool => decode_elements::<1>(bytes, big, out, |[b]| b as f32),
        }
    }
}

/// Convert `N`-byte elements with `f`, which reads little-endian bytes; `big`: each element's
/// bytes are reversed first.
fn decode_elements<const N: usize>(
    bytes: &[u8],
    big: bool,
    out: &mut Vec<f32>,
    f: impl Fn([u8; N]) -> f32,
) {
    let (elements, _) = bytes.as_chunks::<N>();
    if big {
        out.extend(elements.iter().map(|&b| {
            let mut b = b;
            b.reverse();
            f(b)
        }));
    } else {
        out.extend(elements.iter().map(|&b| f(b)));
    }
}

/// A tensor as the pickle describes it: a strided view of a storage (in elements).
#[derive(Debug, Clone)]
pub(crate) struct TensorRef {
    pub storage: StorageId,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl TensorRef {
    /// Elements of the view (`None` if the product overflows).
    pub(crate) fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
    }
}

/// Gather the elements of the strided view `t` from its storage bytes (in byte order `order`), as
/// f32, in row-major order of `t.shape`.
pub(crate) fn materialize(
    t: &TensorRef,
    storage: &[u8],
    order: ByteOrder,
) -> Result<Vec<f32>, TorchFileError> {
    let dtype = t.storage.dtype;
    let size = dtype.size();
    if t.shape.len() != t.stride.len() {
        return Err(TorchFileError::RankMismatch {
            sizes: t.shape.len(),
            strides: t.stride.len(),
        });
    }
    if t.shape.contains(&0) {
        return Ok(Vec::new());
    }
    let numel = t
        .shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or(TorchFileError::ViewOverflow)?;
    // How far each dimension reaches: (n - 1) * stride elements (n >= 1 here).
    let spans: Vec<usize> = t
        .shape
        .iter()
        .zip(&t.stride)
        .map(|(&n, &s)| (n - 1).checked_mul(s))
        .collect::<Option<_>>()
        .ok_or(TorchFileError::ViewOverflow)?;
    let last = spans
        .iter()
        .try_fold(t.offset, |acc, &s| acc.checked_add(s))
        .ok_or(TorchFileError::ViewOverflow)?;
    let available = storage.len() / size;
    if last >= available {
        return Err(TorchFileError::StorageTooSmall { last, available });
    }
    // From here on every element index is at most `last`, so below `available`, and every
    // byte offset below `storage.len()`: nothing overflows.
    let contiguous = {
        let mut expect = 1usize;
        let mut ok = true;
        for (&n, &s) in t.shape.iter().zip(&t.stride).rev() {
            ok &= n == 1 || s == expect;
            expect = expect.saturating_mul(n);
        }
        ok
    };
    let too_small = || TorchFileError::StorageTooSmall { last, available };
    if contiguous {
        // Contiguous: the elements are offset..=last, numel of them.
        let bytes = storage
            .get(t.offset * size..(last + 1) * size)
            .ok_or_else(too_small)?;
        let mut out = Vec::with_capacity(numel);
        dtype.decode_into(bytes, order, &mut out);
        return Ok(out);
    }
    // Broadcast views (stride 0) can have more elements than the storage: allocate fallibly.
    let mut out = Vec::new();
    out.try_reserve_exact(numel)
        .map_err(|_| TorchFileError::TooLarge { numel })?;
    let mut index = vec![0usize; t.shape.len()];
    let mut element = t.offset;
    for _ in 0..numel {
        // `element` stays within offset..=last (checked above), so this cannot overflow.
        let start = element * size;
        let bytes = storage.get(start..start + size).ok_or_else(too_small)?;
        dtype.decode_into(bytes, order, &mut out);
        // Next index, last dimension fastest; `element` follows it.
        for (((i, &n), &s), &span) in index
            .iter_mut()
            .zip(&t.shape)
            .zip(&t.stride)
            .zip(&spans)
            .rev()
        {
            *i += 1;
            if *i < n {
                element += s;
                break;
            }
            *i = 0;
            element -= span;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(dtype: StorageDtype, offset: usize, shape: &[usize], stride: &[usize]) -> TensorRef {
        TensorRef {
            storage: StorageId {
                key: "0".into(),
                dtype,
            },
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    /// f32 storage holding 0.0, 1.0, … (n-1) as f32.
    fn iota_f32(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    fn f32s(t: &TensorRef, storage: &[u8]) -> Vec<f32> {
        materialize(t, storage, ByteOrder::Little).unwrap()
    }

    #[test]
    fn big_endian_storages_are_byte_swapped_per_element() {
        // torch.load byte-swaps a storage whose archive says `big`: the same values, read from
        // big-endian bytes, contiguous and strided, for every element size.
        let be =
            |values: &[f32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_be_bytes()).collect() };
        let storage = be(&[0.0, 1.5, -2.0, 3.25, 4.0, 5.0]);
        let t = view(StorageDtype::F32, 0, &[2, 3], &[3, 1]);
        assert_eq!(
            materialize(&t, &storage, ByteOrder::Big).unwrap(),
            [0.0, 1.5, -2.0, 3.25, 4.0, 5.0]
        );
        let t = view(StorageDtype::F32, 1, &[2, 2], &[1, 3]);
        assert_eq!(
            materialize(&t, &storage, ByteOrder::Big).unwrap(),
            [1.5, 4.0, -2.0, 5.0]
        );
        let f64s: Vec<u8> = [1.0f64, -0.5]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let i64s: Vec<u8> = [258i64, -3].iter().flat_map(|v| v.to_be_bytes()).collect();
        let i32s: Vec<u8> = [65_536i32, -7]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let i16s: Vec<u8> = [256i16, -2].iter().flat_map(|v| v.to_be_bytes()).collect();
        let f16s: Vec<u8> = [half::f16::from_f32(0.5), half::f16::from_f32(-8.0)]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let bf16s: Vec<u8> = [half::bf16::from_f32(2.0), half::bf16::from_f32(-0.25)]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        for (dtype, bytes, expected) in [
            (StorageDtype::F64, f64s, [1.0, -0.5]),
            (StorageDtype::I64, i64s, [258.0, -3.0]),
            (StorageDtype::I32, i32s, [65_536.0, -7.0]),
            (StorageDtype::I16, i16s, [256.0, -2.0]),
            (StorageDtype::F16, f16s, [0.5, -8.0]),
            (StorageDtype::BF16, bf16s, [2.0, -0.25]),
            (StorageDtype::I8, vec![1, 0xfe], [1.0, -2.0]),
            (StorageDtype::U8, vec![1, 0xfe], [1.0, 254.0]),
        ] {
            let t = view(dtype, 0, &[2], &[1]);
            assert_eq!(
                materialize(&t, &bytes, ByteOrder::Big).unwrap(),
                expected,
                "{dtype:?}"
            );
            // Read as little-endian, the multi-byte ones differ.
            if dtype.size() > 1 {
                assert_ne!(
                    materialize(&t, &bytes, ByteOrder::Little).unwrap(),
                    expected,
                    "{dtype:?}"
                );
            }
        }
    }

    #[test]
    fn contiguous_view_reads_elements_in_order() {
        let storage = iota_f32(6);
        let t = view(StorageDtype::F32, 0, &[2, 3], &[3, 1]);
        assert_eq!(f32s(&t, &storage), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn contiguous_view_with_offset_and_unit_dims_of_any_stride() {
        let storage = iota_f32(10);
        // Size-1 dimensions may carry any stride and still be contiguous.
        let t = view(StorageDtype::F32, 4, &[1, 2, 1, 2], &[99, 2, 7, 1]);
        assert_eq!(f32s(&t, &storage), [4.0, 5.0, 6.0, 7.0]);
    }

    #[test]
    fn scalar_view_is_one_element_at_the_offset() {
        let storage = iota_f32(5);
        let t = view(StorageDtype::F32, 3, &[], &[]);
        assert_eq!(f32s(&t, &storage), [3.0]);
    }

    #[test]
    fn transposed_strides() {
        // Storage holds a 2x3 matrix row-major; the view is its 3x2 transpose.
        let storage = iota_f32(6);
        let t = view(StorageDtype::F32, 0, &[3, 2], &[1, 3]);
        let mut expected = Vec::new();
        for r in 0..3 {
            for c in 0..2 {
                expected.push((c * 3 + r) as f32);
            }
        }
        assert_eq!(f32s(&t, &storage), expected);
    }

    #[test]
    fn strided_view_with_offset_in_three_dimensions() {
        let storage = iota_f32(64);
        let (offset, shape, stride) = (5, [2, 3, 2], [20, 1, 7]);
        let t = view(StorageDtype::F32, offset, &shape, &stride);
        let mut expected = Vec::new();
        for a in 0..shape[0] {
            for b in 0..shape[1] {
                for c in 0..shape[2] {
                    expected.push((offset + a * stride[0] + b * stride[1] + c * stride[2]) as f32);
                }
            }
        }
        assert_eq!(f32s(&t, &storage), expected);
    }

    #[test]
    fn stride_zero_broadcasts() {
        let storage = iota_f32(3);
        // A row of 3 repeated 4 times.
        let t = view(StorageDtype::F32, 0, &[4, 3], &[0, 1]);
        assert_eq!(f32s(&t, &storage), [0.0, 1.0, 2.0].repeat(4));
        // One element repeated.
        let t = view(StorageDtype::F32, 2, &[5], &[0]);
        assert_eq!(f32s(&t, &storage), [2.0; 5]);
    }

    #[test]
    fn empty_views_read_nothing_even_past_the_storage() {
        let t = view(StorageDtype::F32, 1000, &[3, 0, 5], &[1, 1, 1]);
        assert_eq!(f32s(&t, &[]), Vec::<f32>::new());
        // A zero dimension wins over dimensions whose product would overflow.
        let t = view(
            StorageDtype::F32,
            0,
            &[usize::MAX, usize::MAX, 0],
            &[1, 1, 1],
        );
        assert_eq!(f32s(&t, &[]), Vec::<f32>::new());
    }

    #[test]
    fn storage_too_small_is_refused() {
        let storage = iota_f32(6);
        // Contiguous 2x3 from offset 1 needs elements 1..=6.
        let t = view(StorageDtype::F32, 1, &[2, 3], &[3, 1]);
        match materialize(&t, &storage, ByteOrder::Little) {
            Err(TorchFileError::StorageTooSmall { last, available }) => {
                assert_eq!((last, available), (6, 6));
            }
            other => panic!("{other:?}"),
        }
        // Strided: element 0 + 2*2 + 1*3 = 7 is out of 6.
        let t = view(StorageDtype::F32, 0, &[3, 2], &[2, 3]);
        assert!(matches!(
            materialize(&t, &storage, ByteOrder::Little),
            Err(TorchFileError::StorageTooSmall {
                last: 7,
                available: 6
            })
        ));
        // A partial trailing element does not count.
        let t = view(StorageDtype::F32, 0, &[2], &[1]);
        assert!(matches!(
            materialize(&t, &storage[..7], ByteOrder::Little),
            Err(TorchFileError::StorageTooSmall {
                last: 1,
                available: 1
            })
        ));
        let msg = materialize(&t, &[], ByteOrder::Little)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "view reaches element 1 but the storage holds 0");
    }

    #[test]
    fn size_and_stride_of_different_lengths_are_refused() {
        let t = view(StorageDtype::F32, 0, &[2, 3], &[3]);
        assert!(matches!(
            materialize(&t, &iota_f32(6), ByteOrder::Little),
            Err(TorchFileError::RankMismatch {
                sizes: 2,
                strides: 1
            })
        ));
    }

    #[test]
    fn overflowing_views_are_refused_without_panicking() {
        let storage = iota_f32(4);
        for (offset, shape, stride) in [
            (0, vec![usize::MAX, 2], vec![1, 1]),     // numel overflows
            (0, vec![3], vec![usize::MAX]),           // (n - 1) * stride overflows
            (usize::MAX, vec![2], vec![1]),           // offset + reach overflows
            (1, vec![3, 2], vec![usize::MAX / 2, 1]), // sum of reaches overflows
        ] {
            let t = view(StorageDtype::F32, offset, &shape, &stride);
            assert!(
                matches!(
                    materialize(&t, &storage, ByteOrder::Little),
                    Err(TorchFileError::ViewOverflow)
                ),
                "{shape:?} {stride:?} {offset}"
            );
        }
        // Reach within usize but far past the storage.
        let t = view(StorageDtype::F64, usize::MAX - 1, &[1], &[1]);
        assert!(matches!(
            materialize(&t, &storage, ByteOrder::Little),
            Err(TorchFileError::StorageTooSmall { .. })
        ));
    }

    #[test]
    fn a_broadcast_too_large_to_allocate_is_an_error() {
        let storage = iota_f32(1);
        let t = view(StorageDtype::F32, 0, &[usize::MAX / 2], &[0]);
        assert!(matches!(
            materialize(&t, &storage, ByteOrder::Little),
            Err(TorchFileError::TooLarge { .. })
        ));
    }

    /// Each dtype: the view [1:3] of a 3-element storage, contiguous and (stride 0) broadcast.
    fn check_dtype(dtype: StorageDtype, storage: &[u8], expected: [f32; 3]) {
        assert_eq!(storage.len(), 3 * dtype.size(), "{dtype:?}");
        let t = view(dtype, 1, &[2], &[1]);
        assert_eq!(f32s(&t, storage), expected[1..], "{dtype:?}");
        let t = view(dtype, 2, &[2, 1], &[0, 1]);
        assert_eq!(f32s(&t, storage), [expected[2]; 2], "{dtype:?}");
        let t = view(dtype, 0, &[3], &[1]);
        assert_eq!(f32s(&t, storage), expected, "{dtype:?}");
    }

    #[test]
    fn every_dtype_decodes_little_endian() {
        use StorageDtype as D;
        // f64: 1.5, -2.25, 1e300 (→ inf in f32).
        let mut b = Vec::new();
        b.extend([0, 0, 0, 0, 0, 0, 0xf8, 0x3f]); // 1.5
        b.extend([0, 0, 0, 0, 0, 0, 0x02, 0xc0]); // -2.25
        b.extend(1e300f64.to_le_bytes());
        check_dtype(D::F64, &b, [1.5, -2.25, f32::INFINITY]);
        // f32: 1.0, -0.5, 3.0
        let b = [
            0, 0, 0x80, 0x3f, //
            0, 0, 0, 0xbf, //
            0, 0, 0x40, 0x40,
        ];
        check_dtype(D::F32, &b, [1.0, -0.5, 3.0]);
        // f16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff
        check_dtype(
            D::F16,
            &[0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b],
            [1.0, -2.0, 65504.0],
        );
        // bf16: top halves of f32: 1.0 = 0x3f80, -0.5 = 0xbf00, 3.0 = 0x4040
        check_dtype(
            D::BF16,
            &[0x80, 0x3f, 0x00, 0xbf, 0x40, 0x40],
            [1.0, -0.5, 3.0],
        );
        // i64: 7, -1, 2^32
        let mut b = vec![7, 0, 0, 0, 0, 0, 0, 0];
        b.extend([0xff; 8]);
        b.extend([0, 0, 0, 0, 0x01, 0, 0, 0]);
        check_dtype(D::I64, &b, [7.0, -1.0, 4294967296.0]);
        // i32: 258, -2, 65536
        let b = [2, 1, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 0, 1, 0];
        check_dtype(D::I32, &b, [258.0, -2.0, 65536.0]);
        // i16: 1, -32768, 256
        check_dtype(D::I16, &[1, 0, 0x00, 0x80, 0, 1], [1.0, -32768.0, 256.0]);
        // i8: 5, -1, -128
        check_dtype(D::I8, &[5, 0xff, 0x80], [5.0, -1.0, -128.0]);
        // u8: 5, 255, 128
        check_dtype(D::U8, &[5, 0xff, 0x80], [5.0, 255.0, 128.0]);
        // bool: stored as bytes 0 / 1
        check_dtype(D::Bool, &[1, 0, 1], [1.0, 0.0, 1.0]);
    }

    #[test]
    fn storage_classes_name_their_dtypes() {
        use StorageDtype as D;
        for (class, dtype, size) in [
            ("DoubleStorage", D::F64, 8),
            ("FloatStorage", D::F32, 4),
            ("HalfStorage", D::F16, 2),
            ("BFloat16Storage", D::BF16, 2),
            ("LongStorage", D::I64, 8),
            ("IntStorage", D::I32, 4),
            ("ShortStorage", D::I16, 2),
            ("CharStorage", D::I8, 1),
            ("ByteStorage", D::U8, 1),
            ("BoolStorage", D::Bool, 1),
        ] {
            assert_eq!(StorageDtype::from_storage_class(class), Some(dtype));
            assert_eq!(dtype.size(), size, "{class}");
        }
        for class in ["ComplexFloatStorage", "UntypedStorage", "floatstorage", ""] {
            assert_eq!(StorageDtype::from_storage_class(class), None, "{class}");
        }
    }
}
