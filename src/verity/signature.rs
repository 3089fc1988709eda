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
//! then zero padding. Version 2 (`oiverity2`) signs a manifest instead of the root hash alone:
//!
//! ```text
//! oiverity2
//! roothash=<hex>
//! data_blocks=<n>
//! salt=<hex>
//! compatible=<product>
//! security_version=<n>
//! sig=<ed25519 over the manifest's message, see verity::manifest>
//! fec_roots=<2..24>   (optional, unsigned)
//! ```
//!
//! `openssl pkeyutl -sign -rawin` makes the signature (see
//! board/integration/verity/sign-image.sh); nothing in the block is trusted before it verifies.

use crate::rt::prelude::*;
use crate::verity::hashtree;
use crate::verity::manifest::{parse_sig, valid_compatible, Manifest};
use ed25519_dalek::{Signature, VerifyingKey};

/// Size of the signature block.
pub const BLOCK_LEN: usize = 4096;
const HEADER: &str = "oiverity1";
const HEADER_V2: &str = "oiverity2";
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
    /// Version 2: what the signature covers besides the root hash.
    pub manifest: Option<Manifest>,
}

/// The exact bytes the signature covers.
pub fn message(root: &[u8; 32], manifest: Option<&Manifest>) -> String {
    match manifest {
        Some(m) => m.message(root),
        None => format!("overlay-init verity v1 roothash={}\n", crate::util::hex::hex(root)),
    }
}

/// Parses a signature block (text up to the first NUL byte).
pub fn parse_block(b: &[u8]) -> Result<Signed, String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let text = core::str::from_utf8(&b[..end]).map_err(|_| "the signature block is not text")?;
    let mut lines = text.lines();
    let v2 = match lines.next() {
        Some(HEADER) => false,
        Some(HEADER_V2) => true,
        _ => return Err("no signature block after the hash tree (sign the image with sign-image.sh)".into()),
    };
    let (mut root, mut sig, mut fec_roots) = (None, None, None);
    let (mut data_blocks, mut salt, mut compatible, mut version) = (None, None, None, None);
    let number =
        |k: &str, v: &str| v.parse::<u64>().map_err(|_| format!("{k}={v:?} in the signature block is not a number"));
    for line in lines {
        match line.split_once('=') {
            Some(("roothash", v)) => root = Some(hashtree::parse_root_hash(v)?),
            Some(("data_blocks", v)) if v2 => data_blocks = Some(number("data_blocks", v)?),
            Some(("salt", v)) if v2 => {
                salt = Some(crate::util::hex::parse(v).ok_or_else(|| format!("salt={v:?} is not hex"))?)
            }
            Some(("compatible", v)) if v2 && valid_compatible(v) => compatible = Some(v.to_string()),
            Some(("security_version", v)) if v2 => {
                version =
                    Some(u32::try_from(number("security_version", v)?).map_err(|_| "security_version is too large")?)
            }
            Some(("sig", v)) => sig = Some(parse_sig(v)?),
            // The kernel's range for dm-verity FEC (DM_VERITY_FEC_MIN_RSN..MAX_RSN).
            Some(("fec_roots", v)) => {
                fec_roots = Some(
                    v.parse()
                        .ok()
                        .filter(|r| (2..=24).contains(r))
                        .ok_or_else(|| format!("fec_roots={v:?} in the signature block is not 2 to 24"))?,
                )
            }
            _ => return Err(format!("unknown line {line:?} in the signature block")),
        }
    }
    let manifest = match (data_blocks, salt, compatible, version) {
        (Some(data_blocks), Some(salt), Some(compatible), Some(security_version)) => {
            Some(Manifest { data_blocks, salt, compatible, security_version })
        }
        (None, None, None, None) if !v2 => None,
        _ => return Err("the oiverity2 block lacks data_blocks=, salt=, compatible= or security_version=".into()),
    };
    match (root, sig) {
        (Some(root), Some(sig)) => Ok(Signed { root, sig, fec_roots, manifest }),
        _ => Err("the signature block lacks roothash= or sig=".into()),
    }
}

/// An ed25519 public key as `openssl pkey -pubout` writes it (PEM), or its 44-byte DER.
pub fn parse_public_key(file: &[u8]) -> Result<[u8; 32], String> {
    let der = if file.starts_with(b"-----BEGIN PUBLIC KEY-----") {
        let text = core::str::from_utf8(file).map_err(|_| "the PEM key is not text")?;
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
    let msg = message(&block.root, block.manifest.as_ref());
    key.verify_strict(msg.as_bytes(), &Signature::from_bytes(&block.sig)).map_err(|_| {
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
        let good = Signed { root: [0x11; 32], sig: parse_sig(sig).unwrap(), fec_roots: None, manifest: None };
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

    /// A version 2 block made as sign-image.sh makes it (openssl over the manifest's message):
    /// it verifies, and changing any manifest field breaks the signature.
    #[test]
    fn manifest_blocks_verify_and_every_field_is_signed() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA4xA55WSILG4SEji6KF/nUjnbi1M30bOyR88Zl+yV/h0=\n-----END PUBLIC KEY-----\n";
        let key = parse_public_key(pem.as_bytes()).unwrap();
        let sig = "866da95d7a72388cd8ec383bcdb9663065b6324bed0439b893078aa2ebeea0dedfba8cf6c46e58dc59433a2b8b2e1d4fcec76f7b43bea35c1e78a26b2ee78d06";
        let text = format!(
            "oiverity2\nroothash={}\ndata_blocks=10\nsalt=0102\ncompatible=gw-100\nsecurity_version=3\nsig={sig}\nfec_roots=2\n",
            "11".repeat(32)
        );
        let good = parse_block(text.as_bytes()).unwrap();
        let m = good.manifest.clone().unwrap();
        assert_eq!(
            (m.data_blocks, &m.salt[..], m.compatible.as_str(), m.security_version),
            (10, &[1, 2][..], "gw-100", 3)
        );
        assert_eq!(verify(&key, &good), Ok([0x11; 32]));
        for (field, from, to) in [
            ("compatible", "gw-100", "gw-200"),
            ("security_version", "=3", "=4"),
            ("data_blocks", "=10", "=11"),
            ("salt", "0102", "0103"),
        ] {
            let changed = parse_block(text.replacen(from, to, 1).as_bytes()).unwrap();
            assert!(verify(&key, &changed).is_err(), "{field} is not signed");
        }
        // A manifest field in a version 1 block, or a version 2 block without one, is refused.
        assert!(parse_block(format!("oiverity1\nroothash={}\ncompatible=x\n", "11".repeat(32)).as_bytes()).is_err());
        let e = parse_block(text.replace("compatible=gw-100\n", "").as_bytes()).unwrap_err();
        assert!(e.contains("lacks data_blocks=, salt=, compatible="), "{e}");
    }
}
