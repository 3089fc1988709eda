//! Settings of verified lowers (dm-verity): where the trusted root hash comes from and what the
//! kernel does on a corrupt block. Same `oinit.` prefix and parser as every other key.

use crate::block::spec::DevSpec;
use crate::config::values::Source;
use crate::config::values::{abs_path, need};
use crate::rt::prelude::*;
use crate::verity::hashtree::{self, OnCorruption};

/// When the init reads every block of the image through dm-verity before mounting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullCheck {
    /// On the first boot of an image (a new identity in the state record): a flipped byte
    /// anywhere is then found before the slot is used, at the cost of one read of the image.
    New,
    Always,
    /// Blocks are checked only as they are read (the kernel's lazy checking).
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeritySettings {
    /// Trusted root hashes of slot a (or the one image, `root=`) and slot b.
    pub root_hash: [Option<[u8; 32]>; 2],
    /// Hash partitions of their own (superblock at their start), per slot; none: the tree
    /// follows the image.
    pub hash_dev: [Option<DevSpec>; 2],
    /// The ed25519 public key in the initramfs that signs root hashes (board config only).
    pub key: Option<String>,
    /// The product images must be signed for (`oinit.compatible=`, board config only), and
    /// whether images signed with a root hash alone still boot there (`oinit.verityunversioned`).
    pub compatible: Option<String>,
    pub unversioned: bool,
    pub on_corruption: OnCorruption,
    pub full_check: FullCheck,
    /// Which slot's root hash applies, and the dm device's name (set per slot by `for_slot`).
    pub slot: usize,
    pub name: String,
    /// Set by the A/B boot when the slot's image differs from the one recorded.
    pub new_image: bool,
}

impl Default for VeritySettings {
    fn default() -> Self {
        VeritySettings {
            root_hash: [None, None],
            hash_dev: [None, None],
            key: None,
            compatible: None,
            unversioned: false,
            // A corrupt block at run time means the flash or an attacker changed the image: a
            // restart lets boot counting roll a trial slot back (and a confirmed one with
            // oinit.latefallback) instead of running on with I/O errors.
            on_corruption: OnCorruption::Restart,
            full_check: FullCheck::New,
            slot: 0,
            name: "oinit-root".into(),
            new_image: false,
        }
    }
}

impl VeritySettings {
    /// Whether the lower must be verified: a root hash for this slot, or a signing key.
    pub fn enabled(&self) -> bool {
        self.root_hash[self.slot].is_some() || self.key.is_some()
    }

    /// Whether this boot reads the whole image before using it.
    pub fn check_all(&self) -> bool {
        match self.full_check {
            FullCheck::Always => true,
            FullCheck::New => self.new_image,
            FullCheck::Never => false,
        }
    }

    /// The key naming this slot's hash partition, for messages.
    pub fn hash_dev_key(&self) -> &'static str {
        ["oinit.hashdev", "oinit.bhashdev"][self.slot.min(1)]
    }

    /// The key that gave this slot's root hash, for messages.
    pub fn root_hash_key(&self) -> &'static str {
        ["oinit.roothash", "oinit.broothash"][self.slot.min(1)]
    }

    pub(crate) fn set(&mut self, name: &str, v: Option<&str>, src: Source) -> Result<bool, String> {
        match name {
            "roothash" | "aroothash" => self.root_hash[0] = Some(hashtree::parse_root_hash(need(v)?)?),
            "broothash" => self.root_hash[1] = Some(hashtree::parse_root_hash(need(v)?)?),
            "hashdev" | "ahashdev" => self.hash_dev[0] = Some(DevSpec::parse(need(v)?)?),
            "bhashdev" => self.hash_dev[1] = Some(DevSpec::parse(need(v)?)?),
            // The trust anchor lives in the initramfs: a command line must not swap it.
            "veritykey" if src == Source::Cmdline => {
                return Err("only the board config may name the verity key".into());
            }
            "veritykey" => self.key = Some(abs_path(need(v)?)?),
            // Which images the device accepts is the trust anchor's business too.
            "compatible" | "verityunversioned" if src == Source::Cmdline => {
                return Err("only the board config may say which images the device accepts".into());
            }
            "compatible" => {
                let c = need(v)?;
                if !crate::verity::manifest::valid_compatible(c) {
                    return Err("must be 1 to 64 letters, digits and . _ , : + -".into());
                }
                self.compatible = Some(c.to_string());
            }
            "verityunversioned" => self.unversioned = crate::config::values::flag(v)?,
            "verityerror" => {
                self.on_corruption = OnCorruption::parse(need(v)?).ok_or("must be restart, panic or eio")?;
            }
            "verityfullcheck" => {
                self.full_check = match need(v)? {
                    "new" => FullCheck::New,
                    "always" => FullCheck::Always,
                    "never" => FullCheck::Never,
                    _ => return Err("must be new, always or never".into()),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::settings::Settings;

    #[test]
    fn keys_slots_and_refusals() {
        let h = "ab".repeat(32);
        let (s, l) = Settings::load(
            "oinit.veritykey=/etc/overlay-init/verity.pub",
            &format!("root=/dev/vda1 oinit.roothash={h} oinit.verityerror=eio oinit.verityfullcheck=always"),
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert!(s.verity.enabled() && s.verity.check_all());
        assert_eq!(s.verity.root_hash[0], Some([0xab; 32]));
        assert_eq!(s.verity.on_corruption.name(), "eio");
        for (cmd, key) in [
            ("oinit.roothash=abc", "oinit.roothash"),
            ("oinit.veritykey=/k.pub", "oinit.veritykey"),
            ("oinit.verityerror=ignore", "oinit.verityerror"),
            ("oinit.verityfullcheck=sometimes", "oinit.verityfullcheck"),
        ] {
            let (_, l) = Settings::load("root=/dev/vda1", cmd);
            assert_eq!(l.errors.first().map(|e| e.key.as_str()), Some(key), "{cmd}");
        }
        let (s, _) = Settings::load("root=/dev/vda1", "");
        assert!(!s.verity.enabled());
    }
}
