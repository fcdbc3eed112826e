//! WBI request signing (notes 2.6): the mixin key from the two image keys of
//! `/x/web-interface/nav` (their file stems, shuffled by a fixed table), then `wts` added,
//! parameters sorted by key, `!'()*` removed from values, URL-encoded with upper-case hex,
//! joined, the mixin key appended, MD5 → `w_rid`. getDanmuInfo has required it since
//! 2025-05-26. Keys rotate daily; callers refetch after a while and on `-352`. Pure.

use super::md5;

/// The fixed shuffle of `img_key + sub_key` (notes 2.6).
const MIXIN_TABLE: [usize; 64] = [
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19, 29,
    28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25,
    54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52,
];

/// The 32-character mixin key. Not a credential (anyone can fetch it), but not shown either.
#[derive(Clone, PartialEq, Eq)]
pub struct WbiKey(String);

impl std::fmt::Debug for WbiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WbiKey(..)")
    }
}

impl WbiKey {
    /// From `data.wbi_img.img_url` and `sub_url`: each file's stem is a key.
    pub fn from_urls(img_url: &str, sub_url: &str) -> Result<WbiKey, String> {
        WbiKey::from_keys(stem(img_url), stem(sub_url))
    }

    /// From the two 32-character keys (any 64 ASCII alphanumerics together).
    pub fn from_keys(img_key: &str, sub_key: &str) -> Result<WbiKey, String> {
        let raw = format!("{img_key}{sub_key}");
        if raw.len() != 64 || !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "the WBI keys are not two 32-character keys (got {} and {} characters)",
                img_key.len(),
                sub_key.len()
            ));
        }
        let raw = raw.as_bytes();
        Ok(WbiKey(
            MIXIN_TABLE[..32].iter().map(|&i| raw[i] as char).collect(),
        ))
    }

    pub fn mixin(&self) -> &str {
        &self.0
    }

    /// `w_rid` of `params`, which must already hold `wts`.
    pub fn w_rid(&self, params: &[(&str, &str)]) -> String {
        let mut sorted: Vec<(&str, String)> = params
            .iter()
            .map(|(k, v)| (*k, v.chars().filter(|c| !"!'()*".contains(*c)).collect()))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let query: Vec<String> = sorted
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        md5::hex_digest(format!("{}{}", query.join("&"), self.0).as_bytes())
    }

    /// `params` plus `wts` (Unix seconds) and `w_rid`, ready to send.
    pub fn sign(&self, params: &[(&str, &str)], wts: i64) -> Vec<(String, String)> {
        let wts = wts.to_string();
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.push(("wts", &wts));
        let w_rid = self.w_rid(&all);
        let mut out: Vec<(String, String)> = all
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push(("w_rid".into(), w_rid));
        out
    }
}

/// The file stem of an image address: `…/7cd08494….png` → `7cd08494…`.
fn stem(url: &str) -> &str {
    let name = url.rsplit('/').next().unwrap_or(url);
    name.split('.').next().unwrap_or(name)
}

/// Percent-encoding of everything but `A-Z a-z 0-9 - _ . ~`, upper-case hex (space → `%20`),
/// as JavaScript's `encodeURIComponent` after the `!'()*` filter.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> WbiKey {
        WbiKey::from_urls(
            "https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png",
            "https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png",
        )
        .unwrap()
    }

    #[test]
    fn notes_test_vectors() {
        assert_eq!(key().mixin(), "ea1db124af3c7062474693fa704f4ff8");
        assert_eq!(
            key().w_rid(&[
                ("foo", "114"),
                ("bar", "514"),
                ("zab", "1919810"),
                ("wts", "1702204169")
            ]),
            "8f6f2b5b3d485fe1886cec6a0be8c5d4"
        );
        let signed = key().sign(&[("id", "5553263"), ("type", "0")], 1776925721);
        assert_eq!(
            signed.last().unwrap(),
            &(
                "w_rid".to_string(),
                "2662a4f8479c442aa069cef32d60394b".to_string()
            )
        );
        assert!(signed.contains(&("wts".to_string(), "1776925721".to_string())));
    }

    #[test]
    fn values_are_filtered_and_encoded() {
        // `!'()*` are dropped before encoding: these two sign alike.
        assert_eq!(
            key().w_rid(&[("q", "a(b)!c*'"), ("wts", "1")]),
            key().w_rid(&[("q", "abc"), ("wts", "1")])
        );
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
        for (img, sub) in [("short", "4932caff0ff746eab6f01bf08b70ac45"), ("", "")] {
            assert!(WbiKey::from_keys(img, sub).is_err());
        }
        assert!(WbiKey::from_keys(&"é".repeat(16), &"a".repeat(32)).is_err());
    }
}
