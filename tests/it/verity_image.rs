//! Images made by the reference tools (mksquashfs, `veritysetup format`, `openssl pkeyutl`)
//! through board/integration/verity/sign-image.sh, checked by the code `install` and the boot
//! use: the layout, the hash tree and the signature agree with cryptsetup's, and any change to
//! the data, the tree or the signature is refused.

use overlay_init::verity::image as verity_image;
use overlay_init::verity::signature;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tools() -> bool {
    let ok = ["mksquashfs", "mkfs.erofs", "veritysetup", "openssl"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t} || test -x /usr/sbin/{t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(
            std::env::var_os("OI_REQUIRE_ROOT").is_none(),
            "verity tests need mksquashfs, mkfs.erofs, veritysetup, openssl"
        );
        eprintln!("SKIPPED verity_image: mksquashfs, mkfs.erofs, veritysetup or openssl missing (run tests/setup.sh)");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Fixture {
    dir: PathBuf,
    image: PathBuf,
    key: [u8; 32],
    root: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A squashfs of 600 KiB of incompressible data (so the tree has two levels), signed; with
/// `fec` parity bytes of error correction after the signature block.
fn fixture(tag: &str, fec: Option<u8>) -> Fixture {
    fixture_with(tag, fec, false)
}

/// With `split`, the tree and what follows it go to `img.verity.hash` (a hash partition's
/// content) and the image is the padded squashfs alone.
fn fixture_with(tag: &str, fec: Option<u8>, split: bool) -> Fixture {
    fixture_of(tag, fec, split, false)
}

/// With `erofs`, the tree is an LZ4 EROFS image (Debian's erofs-utils) instead of squashfs.
fn fixture_of(tag: &str, fec: Option<u8>, split: bool, erofs: bool) -> Fixture {
    let dir = std::env::temp_dir().join(format!("oi-verity-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..600 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("tree/noise"), noise).unwrap();
    let sqfs = dir.join("img.sqfs");
    if erofs {
        run(Command::new("mkfs.erofs").args(["-zlz4hc", "--quiet"]).arg(&sqfs).arg(dir.join("tree")));
    } else {
        run(Command::new("mksquashfs").arg(dir.join("tree")).arg(&sqfs).args(["-quiet", "-noappend"]));
    }
    let key = dir.join("k.pem");
    run(Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key));
    let out = Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).output().unwrap();
    let public = signature::parse_public_key(&out.stdout).unwrap();
    let image = dir.join("img.verity");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("board/integration/verity/sign-image.sh");
    let mut sign = Command::new("sh");
    sign.arg(script).arg(&sqfs).arg(&key).arg(&image);
    if let Some(roots) = fec {
        sign.env("VERITY_FEC_ROOTS", roots.to_string());
    }
    if split {
        sign.env("VERITY_HASH_FILE", dir.join("img.verity.hash"));
    }
    run(&mut sign);
    let root = std::fs::read_to_string(dir.join("img.verity.roothash")).unwrap().trim().to_string();
    Fixture { dir, image, key: public, root }
}

fn check(f: &Fixture, bytes: &[u8]) -> Result<String, String> {
    let p = f.dir.join("candidate");
    std::fs::write(&p, bytes).unwrap();
    let file = std::fs::File::open(&p).unwrap();
    verity_image::check(&file, bytes.len() as u64, None, &f.key).map(|c| overlay_init::util::hex::hex(&c.root))
}

#[test]
fn signed_image_from_the_reference_tools_verifies() {
    if !tools() {
        return;
    }
    let f = fixture("good", None);
    let bytes = std::fs::read(&f.image).unwrap();
    assert_eq!(check(&f, &bytes).unwrap(), f.root, "our tree gives veritysetup's root hash");
}

#[test]
fn signed_erofs_image_verifies() {
    if !tools() {
        return;
    }
    let f = fixture_of("erofs", None, false, true);
    let mut bytes = std::fs::read(&f.image).unwrap();
    assert_eq!(check(&f, &bytes).unwrap(), f.root, "our tree gives veritysetup's root hash");
    bytes[8192] ^= 1;
    assert!(check(&f, &bytes).is_err(), "a changed byte in the EROFS data verified");
}

#[test]
fn a_changed_byte_anywhere_or_a_missing_signature_is_refused() {
    if !tools() {
        return;
    }
    let f = fixture("bad", None);
    let good = std::fs::read(&f.image).unwrap();
    let len = good.len();
    // Each change keeps the byte's kind (a hex digit of the signed root hash stays one), so it
    // is the check that refuses it, not a parser.
    for (at, what) in [
        (300 * 1024, "the image was changed after signing"),
        (len - 4096 - 4096 + 100, "stored hash tree does not match"),
        (len - 4096 + "oiverity1\nroothash=".len() + 3, "not signed by the board's key"),
    ] {
        let mut b = good.clone();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        let e = check(&f, &b).unwrap_err();
        assert!(e.contains(what), "byte {at}: {e}");
    }
    let e = check(&f, &good[..len - 4096]).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
    let plain = std::fs::read(f.dir.join("img.sqfs")).unwrap();
    let e = check(&f, &plain).unwrap_err();
    assert!(e.contains("not a signed verity image"), "{e}");
}

#[test]
fn error_correction_area_belongs_to_the_image() {
    if !tools() {
        return;
    }
    let f = fixture("fec", Some(2));
    let bytes = std::fs::read(&f.image).unwrap();
    let p = f.dir.join("candidate");
    std::fs::write(&p, &bytes).unwrap();
    let file = std::fs::File::open(&p).unwrap();
    let checked = verity_image::check(&file, bytes.len() as u64, None, &f.key).unwrap();
    // install copies everything up to the end of the parity veritysetup wrote.
    assert_eq!(checked.len, bytes.len() as u64);
    let e = check(&f, &bytes[..bytes.len() - 4096]).unwrap_err();
    assert!(e.contains("error correction area needs"), "{e}");
}

#[test]
fn hash_tree_on_a_partition_of_its_own() {
    if !tools() {
        return;
    }
    let f = fixture_with("split", Some(2), true);
    let data = std::fs::File::open(&f.image).unwrap();
    let len = std::fs::metadata(&f.image).unwrap().len();
    let hash_path = f.dir.join("img.verity.hash");
    let hash_bytes = std::fs::read(&hash_path).unwrap();
    let hash = std::fs::File::open(&hash_path).unwrap();
    let checked = verity_image::check(&data, len, Some((&hash, hash_bytes.len() as u64)), &f.key).unwrap();
    assert_eq!((overlay_init::util::hex::hex(&checked.root), checked.len), (f.root.clone(), len));
    // Without the hash partition the image alone is not a signed image.
    let e = verity_image::check(&data, len, None, &f.key).unwrap_err();
    assert!(e.contains("not a signed verity image"), "{e}");
    // One byte of the tree (block 1, after the superblock) changed.
    let mut bad = hash_bytes.clone();
    bad[4096 + 7] ^= 1;
    let p = f.dir.join("bad.hash");
    std::fs::write(&p, &bad).unwrap();
    let bad = std::fs::File::open(&p).unwrap();
    let e = verity_image::check(&data, len, Some((&bad, hash_bytes.len() as u64)), &f.key).unwrap_err();
    assert!(e.contains("stored hash tree does not match"), "{e}");
}

/// The verity_meta fuzz corpus holds a real image (mksquashfs, then veritysetup format with the
/// tree after it): the boot's metadata reader accepts it whole, so the fuzzer starts from a
/// device that reaches the layout, the signature-block and the size checks.
#[test]
fn the_verity_meta_seed_is_a_real_verity_image() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/verity_meta/squashfs-with-tree");
    let data = std::fs::read(path).unwrap();
    let read = |at: u64, len: usize| data.get(at as usize..at as usize + len).map(<[u8]>::to_vec);
    let m = overlay_init::verity::meta::read(&data[..4096], "seed", data.len() as u64, false, false, read).unwrap();
    assert_eq!((m.layout.hash_offset, m.sb.data_blocks, m.block.is_none()), (4096, 1, true));
}

/// sign-image.sh with VERITY_COMPATIBLE and VERITY_SECURITY_VERSION makes a version 2 block
/// (veritysetup's salt and block count in the signed manifest) that the code `install` and the
/// boot run verifies, and whose manifest decides acceptance: the product, the floor.
#[test]
fn a_signed_manifest_names_the_product_and_the_security_version() {
    if !tools() {
        return;
    }
    let f = fixture("manifest", None);
    let image = f.dir.join("img.v2.verity");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("board/integration/verity/sign-image.sh");
    run(Command::new("sh")
        .arg(script)
        .arg(f.dir.join("img.sqfs"))
        .arg(f.dir.join("k.pem"))
        .arg(&image)
        .env("VERITY_COMPATIBLE", "acme,gw-100")
        .env("VERITY_SECURITY_VERSION", "4"));
    let bytes = std::fs::read(&image).unwrap();
    let file = std::fs::File::open(&image).unwrap();
    let c = verity_image::check(&file, bytes.len() as u64, None, &f.key).unwrap();
    let m = c.manifest.clone().expect("no manifest in the block");
    assert_eq!((m.compatible.as_str(), m.security_version, m.data_blocks), ("acme,gw-100", 4, c.sb.data_blocks));
    assert_eq!(m.salt, c.sb.salt);
    use overlay_init::verity::manifest::{accept, Acceptance};
    let device = |floor| Acceptance { compatible: Some("acme,gw-100".into()), unversioned: false, floor };
    assert_eq!(accept(c.manifest.as_ref(), &c.sb, &device(4)), Ok(4));
    assert!(accept(c.manifest.as_ref(), &c.sb, &device(5)).unwrap_err().contains("a downgrade"));
    let other = Acceptance { compatible: Some("acme,gw-200".into()), ..device(0) };
    assert!(accept(c.manifest.as_ref(), &c.sb, &other).unwrap_err().contains("another product"));
    // The block's text names the product: change it and the signature no longer verifies.
    let at = bytes.windows(17).position(|w| w == b"compatible=acme,g").unwrap();
    let mut changed = bytes.clone();
    changed[at + 16] = b'b';
    assert!(check(&f, &changed).unwrap_err().contains("not signed by the board's key"));
}
