//! Compressing one frame's payload: a raw deflate stream ended by a sync flush, whose last four bytes
//! (`00 00 ff ff`) are left off, as RFC 7692 says.
//!
//! The compressor belongs to the thread (a few hundred KiB, allocated once per thread, level and window)
//! and starts afresh for every frame: the server negotiates `server_no_context_takeover`, so no frame depends
//! on another and the result can go to any client.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, FlushCompress};

thread_local! {
    /// One compressor per level and window the thread has used: one in practice (the configured level
    /// and 15 bits), a second only for clients that asked for a smaller window.
    static COMPRESSORS: RefCell<Vec<(u32, u8, Compress)>> = const { RefCell::new(Vec::new()) };
}

/// `payload` compressed at `level` with a window of `window_bits` (9 to 15).
pub(crate) fn compress(payload: &[u8], level: u32, window_bits: u8) -> Option<Bytes> {
    COMPRESSORS.with_borrow_mut(|compressors| {
        let at = match compressors
            .iter()
            .position(|(l, w, _)| (*l, *w) == (level, window_bits))
        {
            Some(at) => at,
            None => {
                let compress = Compress::new_with_window_bits(
                    flate2::Compression::new(level),
                    false,
                    window_bits,
                );
                compressors.push((level, window_bits, compress));
                compressors.len() - 1
            }
        };
        let compress = &mut compressors[at].2;
        compress.reset();
        deflate(compress, payload)
    })
}

fn deflate(compress: &mut Compress, payload: &[u8]) -> Option<Bytes> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compress.total_in()).ok()?;
        compress
            .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .ok()?;
        // The flush is complete once all input is in and the output did not fill the space it had.
        if usize::try_from(compress.total_in()).ok()? == payload.len() && out.len() < out.capacity()
        {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    let body = out.strip_suffix(&[0, 0, 0xff, 0xff])?.len();
    out.truncate(body);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use flate2::{Decompress, FlushDecompress};

    use super::*;

    fn inflate(compressed: &[u8]) -> Vec<u8> {
        let mut input = compressed.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn json_shrinks_and_inflates_back() {
        let json = r#"{"type":"chat","data":{"room":"lobby","text":"hello there"}}"#.repeat(20);
        let compressed = compress(json.as_bytes(), 1, 15).unwrap();
        assert!(compressed.len() * 4 < json.len(), "{}", compressed.len());
        assert_eq!(inflate(&compressed), json.as_bytes());
        // Every frame is a stream of its own: the same input gives the same bytes.
        assert_eq!(compress(json.as_bytes(), 1, 15).unwrap(), compressed);
        assert_eq!(
            inflate(&compress(json.as_bytes(), 9, 15).unwrap()),
            json.as_bytes()
        );
    }

    #[test]
    fn a_smaller_window_inflates_the_same() {
        let json = text_with_distant_repeats();
        let small = compress(&json, 1, 9).unwrap();
        assert_eq!(inflate(&small), json);
        assert!(small.len() > compress(&json, 1, 15).unwrap().len());
    }

    /// Text whose repeats lie 2 KiB apart: beyond a 512-byte window, within a 32 KiB one.
    fn text_with_distant_repeats() -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let block: Vec<u8> = (0..2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'a' + (x % 26) as u8
            })
            .collect();
        block.repeat(8)
    }
}
