//! `gen-cpio LIST OUT.cpio.gz`: the kernel's gen_init_cpio, without root and without a kernel tree.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [list, out] = args.as_slice() else {
        eprintln!("usage: gen-cpio LIST OUT.cpio.gz   (LIST in the kernel's gen_init_cpio format)");
        std::process::exit(2);
    };
    if let Err(e) = initramfs::build(std::path::Path::new(list), std::path::Path::new(out)) {
        eprintln!("gen-cpio: {e}");
        std::process::exit(1);
    }
}
