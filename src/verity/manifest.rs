//! What a signature vouches for beyond the root hash (signature blocks `oiverity2`): the hash
//! tree's parameters, the product the image is for (`compatible`) and its security version, which
//! never goes down on a device. Pure: the boot, `install` and RAUC's `set-primary` decide with
//! `accept`; a downgrade needs a token signed with the board's key (`overlay-init install
//! --downgrade-token`), because anything a remote root can write (the command line, the
//! bootloader environment, a file on the data partition) must not reopen old vulnerable builds.

use crate::rt::prelude::*;
use crate::util::hex::hex;
use crate::verity::hashtree::Superblock;
use ed25519_dalek::{Signature, VerifyingKey};

/// The signed fields of a version 2 signature block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub data_blocks: u64,
    pub salt: Vec<u8>,
    /// The product or board the image is for (`oinit.compatible=` on the device).
    pub compatible: String,
    pub security_version: u32,
}

impl Manifest {
    /// The exact bytes a version 2 signature covers.
    pub fn message(&self, root: &[u8; 32]) -> String {
        format!(
            "overlay-init verity v2\nroothash={}\ndata_blocks={}\nsalt={}\ncompatible={}\nsecurity_version={}\n",
            hex(root),
            self.data_blocks,
            hex(&self.salt),
            self.compatible,
            self.security_version
        )
    }
}

/// A compatible string: what a product name needs, nothing a line or a message could be bent by.
pub fn valid_compatible(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._,:+-".contains(&b))
}

/// What the device accepts: its compatible string (none: any), whether an image signed without a
/// manifest (root hash only, `oiverity1`) still boots where a compatible string is set, and the
/// lowest security version it boots (the highest that was marked good).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acceptance {
    pub compatible: Option<String>,
    pub unversioned: bool,
    pub floor: u32,
}

/// Whether an image whose signature verified may be used: Ok(its security version; 0 without a
/// manifest), or why not and what to do.
pub fn accept(manifest: Option<&Manifest>, sb: &Superblock, a: &Acceptance) -> Result<u32, String> {
    let Some(m) = manifest else {
        return match &a.compatible {
            Some(c) if !a.unversioned => Err(format!(
                "it is signed without a manifest (root hash only) and this device (oinit.compatible={c}) boots only \
                 images whose signature names it: sign with VERITY_COMPATIBLE={c} VERITY_SECURITY_VERSION=N sign-image.sh"
            )),
            _ => Ok(0),
        };
    };
    if m.data_blocks != sb.data_blocks || m.salt != sb.salt {
        return Err("its verity superblock is not the one the signature names (data blocks or salt changed)".into());
    }
    if let Some(c) = a.compatible.as_ref().filter(|c| **c != m.compatible) {
        return Err(format!("it is signed for '{}', this device is '{c}': an image for another product", m.compatible));
    }
    if m.security_version < a.floor {
        return Err(format!(
            "its security version {} is below {}, the highest this device marked good: a downgrade, refused \
             (allowed only with a downgrade token signed with the board's key: overlay-init install --downgrade-token)",
            m.security_version, a.floor
        ));
    }
    Ok(m.security_version)
}

/// A signed permission to go back to images of `security_version` and up, for one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DowngradeToken {
    pub compatible: String,
    pub security_version: u32,
    pub sig: [u8; 64],
}

impl DowngradeToken {
    pub fn message(&self) -> String {
        format!(
            "overlay-init downgrade v1\ncompatible={}\nsecurity_version={}\n",
            self.compatible, self.security_version
        )
    }
}

/// Parses a token file (`oidowngrade1` and its lines, as make-downgrade-token.sh writes it).
pub fn parse_token(text: &str) -> Result<DowngradeToken, String> {
    let mut lines = text.lines();
    if lines.next() != Some("oidowngrade1") {
        return Err("not a downgrade token (make one with make-downgrade-token.sh)".into());
    }
    let (mut compatible, mut version, mut sig) = (None, None, None);
    for line in lines {
        match line.split_once('=') {
            Some(("compatible", v)) if valid_compatible(v) => compatible = Some(v.to_string()),
            Some(("security_version", v)) => version = v.parse().ok(),
            Some(("sig", v)) => sig = Some(parse_sig(v)?),
            _ => return Err(format!("unknown or malformed line {line:?} in the downgrade token")),
        }
    }
    match (compatible, version, sig) {
        (Some(compatible), Some(security_version), Some(sig)) => {
            Ok(DowngradeToken { compatible, security_version, sig })
        }
        _ => Err("the downgrade token lacks compatible=, security_version= or sig=".into()),
    }
}

/// An ed25519 signature as 128 hex digits.
pub fn parse_sig(v: &str) -> Result<[u8; 64], String> {
    let bad = || format!("sig={v:?} is not an ed25519 signature (128 hex digits)");
    crate::util::hex::parse(v).and_then(|b| b.try_into().ok()).ok_or_else(bad)
}

/// Checks a token with the board's key for this device's compatible string; returns the floor it
/// allows.
pub fn verify_token(key: &[u8; 32], t: &DowngradeToken, compatible: Option<&str>) -> Result<u32, String> {
    let k = VerifyingKey::from_bytes(key).map_err(|_| "the verity public key is not a valid ed25519 point")?;
    k.verify_strict(t.message().as_bytes(), &Signature::from_bytes(&t.sig))
        .map_err(|_| "the downgrade token is not signed by the board's key".to_string())?;
    match compatible {
        Some(c) if c != t.compatible => {
            Err(format!("the downgrade token is for '{}', this device is '{c}'", t.compatible))
        }
        _ => Ok(t.security_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(compatible: &str, v: u32) -> Manifest {
        Manifest { data_blocks: 10, salt: vec![1, 2], compatible: compatible.into(), security_version: v }
    }
    const SB: Superblock = Superblock { data_blocks: 10, salt: Vec::new() };

    #[test]
    fn compatible_version_and_hash_parameters() {
        let sb = Superblock { salt: vec![1, 2], ..SB };
        let a = Acceptance { compatible: Some("gw-100".into()), unversioned: false, floor: 3 };
        assert_eq!(accept(Some(&m("gw-100", 3)), &sb, &a), Ok(3));
        assert_eq!(accept(Some(&m("gw-100", 7)), &sb, &a), Ok(7));
        let e = accept(Some(&m("gw-100", 2)), &sb, &a).unwrap_err();
        assert!(e.contains("security version 2 is below 3") && e.contains("--downgrade-token"), "{e}");
        let e = accept(Some(&m("gw-200", 9)), &sb, &a).unwrap_err();
        assert!(e.contains("signed for 'gw-200', this device is 'gw-100'"), "{e}");
        let e = accept(Some(&m("gw-100", 3)), &Superblock { data_blocks: 11, ..sb.clone() }, &a).unwrap_err();
        assert!(e.contains("not the one the signature names"), "{e}");
        // Root-hash-only signatures: refused where a compatible string is set, unless allowed.
        let e = accept(None, &sb, &a).unwrap_err();
        assert!(e.contains("without a manifest") && e.contains("VERITY_COMPATIBLE=gw-100"), "{e}");
        assert_eq!(accept(None, &sb, &Acceptance { unversioned: true, ..a.clone() }), Ok(0));
        assert_eq!(accept(None, &sb, &Acceptance::default()), Ok(0));
        // A device without a compatible string takes any product's image, but never a downgrade.
        let any = Acceptance { floor: 3, ..Acceptance::default() };
        assert_eq!(accept(Some(&m("gw-200", 4)), &sb, &any), Ok(4));
        assert!(accept(Some(&m("gw-200", 1)), &sb, &any).is_err());
    }

    #[test]
    fn compatible_strings() {
        assert!(valid_compatible("acme,gw-100:rev.2+x_y"));
        for bad in ["", "a b", "a\nb", "a=b", &"x".repeat(65)] {
            assert!(!valid_compatible(bad), "{bad:?}");
        }
    }

    /// Made with `openssl genpkey -algorithm ed25519` and `openssl pkeyutl -sign -rawin` over
    /// the token's message, as make-downgrade-token.sh does.
    #[test]
    fn openssl_downgrade_tokens_verify() {
        // The raw key of that PEM: MCowBQYDK2VwAyEA4xA55WSILG4SEji6KF/nUjnbi1M30bOyR88Zl+yV/h0=
        let key: [u8; 32] = crate::util::hex::parse("e31039e564882c6e121238ba285fe75239db8b5337d1b3b247cf1997ec95fe1d")
            .unwrap()
            .try_into()
            .unwrap();
        let t =
            parse_token(&format!("oidowngrade1\ncompatible=gw-100\nsecurity_version=1\nsig={TOKEN_SIG}\n")).unwrap();
        assert_eq!(verify_token(&key, &t, Some("gw-100")), Ok(1));
        assert_eq!(verify_token(&key, &t, None), Ok(1));
        assert!(verify_token(&key, &t, Some("gw-200")).unwrap_err().contains("token is for 'gw-100'"));
        let raised = DowngradeToken { security_version: 0, ..t.clone() };
        assert!(verify_token(&key, &raised, Some("gw-100")).unwrap_err().contains("not signed"));
        assert!(parse_token("oidowngrade1\ncompatible=a b\n").is_err());
        assert!(parse_token("oiverity1\n").is_err());
    }
    const TOKEN_SIG: &str = "faa7799810109b73e8a1c49823fa83786bd5c90ade6c12d553a4924382b75991e579b47ba572e10cd5a7cef624322609a38ce24f1245b03e8b0eaad773720301";
}
