//! The raw wire form of OIP BYTES data: each element a 4-byte little-endian length followed by its
//! bytes, elements back to back (as `raw_input_contents` and `raw_output_contents` carry them).

use tonic::Status;

/// Split raw BYTES data into its `n` elements (4-byte little-endian length, then the bytes).
pub fn split_raw_bytes(raw: &[u8], n: usize, name: &str) -> Result<Vec<Vec<u8>>, Status> {
    let invalid = Status::invalid_argument;
    let mut elements = Vec::with_capacity(n);
    let mut rest = raw;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(invalid(format!(
                "raw data of input {name} is malformed: {} byte(s) left after element {} where a 4-byte length was expected",
                rest.len(),
                elements.len()
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(invalid(format!(
                "raw data of input {name} is malformed: element {} says {len} bytes but only {} remain",
                elements.len(),
                tail.len()
            )));
        }
        if elements.len() == n {
            return Err(invalid(format!(
                "raw data of input {name} holds more than the {n} element(s) its shape says"
            )));
        }
        elements.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    if elements.len() != n {
        return Err(invalid(format!(
            "raw data of input {name} holds {} element(s); its shape says {n}",
            elements.len()
        )));
    }
    Ok(elements)
}

/// Serialise BYTES elements as raw data.
pub fn join_raw_bytes<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_round_trip_and_refusals() {
        let files: Vec<&[u8]> = vec![b"abc", b"", b"\x00\x01"];
        let raw = join_raw_bytes(files.iter().copied());
        assert_eq!(raw.len(), 3 * 4 + 5);
        assert_eq!(&raw[..4], &3u32.to_le_bytes());
        let back = split_raw_bytes(&raw, 3, "IMAGE").unwrap();
        assert_eq!(back, vec![b"abc".to_vec(), vec![], vec![0, 1]]);
        // Every cut inside the data is refused, never read past the end.
        for cut in 1..raw.len() {
            assert!(
                split_raw_bytes(&raw[..cut], 3, "IMAGE").is_err(),
                "cut {cut}"
            );
        }
        assert!(split_raw_bytes(&raw, 2, "IMAGE").is_err());
        assert!(split_raw_bytes(&raw, 4, "IMAGE").is_err());
        // A length far past the end.
        let lying = [0xff, 0xff, 0xff, 0xff, 1, 2];
        let e = split_raw_bytes(&lying, 1, "IMAGE").unwrap_err();
        assert!(e.message().contains("4294967295 bytes"), "{e:?}");
    }
}
