//! Signed root hashes: an ed25519 signature over a verity root hash, checked against a public key
//! kept in the initramfs (the board's trust anchor). The signature travels with the image, in a
//! 4 KiB block after the hash tree, so a slot partition holds everything one write put there:
//!
//! ```text
//! oiverity1
//! roothash=<64 hex digits>
//! sig=<128 hex digits: ed25519 over "overlay-init verity v1 roothash=<hex>\n">
//! fec_roots=<2..24>   (only when an error correction area follows the block)
//! ```
//! then zero padding. `openssl pkeyutl -sign -rawin` makes the signature (see
//! board/integration/verity/sign-image.sh); nothing in the block is trusted before it verifies.

use crate::verity::hashtree;
use ed25519_dalek::{Signature, VerifyingKey};

/// Size of the signature block.
pub const BLOCK_LEN: usize = 4096;
const HEADER: &str = "oiverity1";
/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the 32-byte key follows.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// What the signature block claims, before verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub root: [u8; 32],
    pub sig: [u8; 64],
    /// Parity bytes of the forward error correction area after this block, if the image has one.
    /// Not signed, and need not be: dm-verity checks every corrected block against the tree.
    pub fec_roots: Option<u8>,
}

/// The exact bytes the signature covers.
pub fn message(root: &[u8; 32]) -> String {
    format!("overlay-init verity v1 roothash={}\n", crate::util::hex::hex(root))
}

/// Parses a signature block (text up to the first NUL byte).
pub fn parse_block(b: &[u8]) -> Result<Signed, String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let text = std::str::from_utf8(&b[..end]).map_err(|_| "the signature block is not text")?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err("no signature block after the hash tree (sign the image with sign-image.sh)".into());
    }
    let (mut root, mut sig, mut fec_roots) = (None, None, None);
    for line in lines {
        match line.split_once('=') {
            Some(("roothash", v)) => root = Some(hashtree::parse_root_hash(v)?),
            Some(("sig", v)) => sig = Some(parse_sig(v)?),
            // The kernel's range for dm-verity FEC (DM_VERITY_FEC_MIN_RSN..MAX_RSN).
            Some(("fec_roots", v)) => {
                fec_roots = Some(
                    v.parse()
                        .ok()
                        .filter(|r| (2..=24).contains(r))
                        .ok_or(format!("fec_roots={v:?} in the signature block is not 2 to 24"))?,
                )
            }
            _ => return Err(format!("unknown line {line:?} in the signature block")),
        }
    }
    match (root, sig) {
        (Some(root), Some(sig)) => Ok(Signed { root, sig, fec_roots }),
        _ => Err("the signature block lacks roothash= or sig=".into()),
    }
}

fn parse_sig(v: &str) -> Result<[u8; 64], String> {
    let bad = || format!("sig={v:?} is not an ed25519 signature (128 hex digits)");
    if v.len() != 128 || !v.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 64];
    for (o, pair) in out.iter_mut().zip(v.as_bytes().chunks(2)) {
        *o = std::str::from_utf8(pair).ok().and_then(|t| u8::from_str_radix(t, 16).ok()).ok_or_else(bad)?;
    }
    Ok(out)
}

/// An ed25519 public key as `openssl pkey -pubout` writes it (PEM), or its 44-byte DER.
pub fn parse_public_key(file: &[u8]) -> Result<[u8; 32], String> {
    let der = if file.starts_with(b"-----BEGIN PUBLIC KEY-----") {
        let text = std::str::from_utf8(file).map_err(|_| "the PEM key is not text")?;
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64(body.trim()).ok_or("the PEM key's base64 is malformed")?
    } else {
        file.to_vec()
    };
    match der.strip_prefix(&SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => Ok(key.try_into().map_err(|_| "bad key length")?),
        _ => Err("not an ed25519 public key (make one with: openssl pkey -in KEY -pubout)".into()),
    }
}

/// Standard base64 with padding (RFC 4648), as PEM bodies are.
fn base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 != 0 || s.len() - bytes.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in bytes {
        acc = (acc << 6) | u32::from(val(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Checks the block's signature with `key`; returns the root hash it vouches for.
pub fn verify(key: &[u8; 32], block: &Signed) -> Result<[u8; 32], String> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| "the verity public key is not a valid ed25519 point")?;
    key.verify_strict(message(&block.root).as_bytes(), &Signature::from_bytes(&block.sig)).map_err(|_| {
        format!("the root hash {} is not signed by the board's key", crate::util::hex::hex(&block.root))
    })?;
    Ok(block.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 test 1's public key; its PEM as `openssl pkey -pubout` prints it.
    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n";
    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn public_key_pem_and_der() {
        let k = parse_public_key(PEM.as_bytes()).unwrap();
        assert_eq!(crate::util::hex::hex(&k), KEY);
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&k);
        assert_eq!(parse_public_key(&der).unwrap(), k);
        assert!(parse_public_key(b"-----BEGIN PUBLIC KEY-----\nMCow!!==\n-----END PUBLIC KEY-----\n").is_err());
        assert!(parse_public_key(&der[..40]).is_err());
    }

    #[test]
    fn block_parse_and_refusals() {
        let text = format!("oiverity1\nroothash={}\nsig={}\n", "ab".repeat(32), "cd".repeat(64));
        let mut b = text.clone().into_bytes();
        b.resize(BLOCK_LEN, 0);
        let s = parse_block(&b).unwrap();
        assert_eq!((s.root, s.sig, s.fec_roots), ([0xab; 32], [0xcd; 64], None));
        assert_eq!(parse_block(format!("{text}fec_roots=2\n").as_bytes()).unwrap().fec_roots, Some(2));
        let e = parse_block(format!("{text}fec_roots=30\n").as_bytes()).unwrap_err();
        assert!(e.contains("not 2 to 24"), "{e}");
        for (bad, what) in [
            ("", "no signature block"),
            ("oiverity1\nroothash=ab\n", "not a sha256 root hash"),
            ("oiverity1\nsig=00\n", "not an ed25519 signature"),
            ("oiverity1\nmore=1\n", "unknown line"),
            ("oiverity1\n", "lacks roothash"),
        ] {
            let e = parse_block(bad.as_bytes()).unwrap_err();
            assert!(e.contains(what), "{bad:?}: {e}");
        }
    }

    #[test]
    fn openssl_signatures_verify_and_tampering_is_refused() {
        // Made with `openssl genpkey -algorithm ed25519`, `openssl pkeyutl -sign -rawin` over
        // message(&[0x11; 32]).
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAzLHEnxjhNGyhEz/I3uwRA4XwKgyIpHWsiSmHY6KX7sI=\n-----END PUBLIC KEY-----\n";
        let sig = "62dcc0ef68cf2054970793a1dd1f242c0356eb3e0c8448b5f38da2e885b2ce19d4b1d24d91d4cdd18f5e0a2f05609b4510754c71e11a4d41064e2d3465da4c06";
        let key = parse_public_key(pem.as_bytes()).unwrap();
        let good = Signed { root: [0x11; 32], sig: parse_sig(sig).unwrap(), fec_roots: None };
        assert_eq!(verify(&key, &good).unwrap(), [0x11; 32]);
        let other_root = Signed { root: [0x12; 32], ..good.clone() };
        let e = verify(&key, &other_root).unwrap_err();
        assert!(e.contains("not signed by the board's key"), "{e}");
        let mut flipped = good.clone();
        flipped.sig[10] ^= 1;
        assert!(verify(&key, &flipped).is_err());
        let other_key = parse_public_key(PEM.as_bytes()).unwrap();
        assert!(verify(&other_key, &good).is_err());
    }
}
