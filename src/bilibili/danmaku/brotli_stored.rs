//! Tests only: a valid brotli stream made of uncompressed meta-blocks (RFC 7932 §9.2), so the
//! danmaku codec's version 3 (brotli) path is tested without a brotli compressor. Shared with
//! the Bilibili fake (`tests/support/bilibili.rs` includes this file by `#[path]`).

#![allow(dead_code)]

/// A valid brotli stream made of uncompressed meta-blocks (RFC 7932 §9.2): enough to test
/// the version 3 path without a brotli compressor.
pub fn brotli_stored(data: &[u8]) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, bits: u32) {
            self.acc |= value << self.n;
            self.n += bits;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn align(&mut self) {
            if self.n > 0 {
                self.put(0, 8 - self.n);
            }
        }
    }
    let mut w = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    w.put(0, 1); // WBITS = 16
    for chunk in data.chunks(65536) {
        w.put(0, 1); // ISLAST
        w.put(0, 2); // MNIBBLES = 4
        w.put(chunk.len() as u64 - 1, 16); // MLEN - 1
        w.put(1, 1); // ISUNCOMPRESSED
        w.align();
        w.out.extend_from_slice(chunk);
    }
    w.put(1, 1); // ISLAST
    w.put(1, 1); // ISLASTEMPTY
    w.align();
    w.out
}
