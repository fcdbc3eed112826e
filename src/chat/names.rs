//! Room names as map keys. Every logged line looks its room up twice (connection and writer),
//! so the maps use FNV-1a, which is several times cheaper than SipHash on names of at most 25
//! bytes. Flooding is not a concern: the names are our own rooms, as the server echoes them.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64 bit.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

pub type RoomMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
pub type RoomSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;
