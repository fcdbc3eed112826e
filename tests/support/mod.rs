pub mod origin;

/// Byte-exact comparison that reports where the contents part instead of printing them.
#[track_caller]
#[allow(dead_code)]
pub fn same_bytes(actual: &[u8], want: &[u8]) {
    if actual != want {
        let at = actual
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(actual.len().min(want.len()));
        let show = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.min(b.len())..(at + 24).min(b.len())]).into_owned()
        };
        panic!(
            "contents differ: {} bytes vs {} expected, first difference at {at}: {:?} vs {:?}",
            actual.len(),
            want.len(),
            show(actual),
            show(want)
        );
    }
}
