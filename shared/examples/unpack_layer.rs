//! Unpack one layer tar, for benchmarks and by hand:
//!
//! ```text
//! cargo build --release -p ci-core --example unpack_layer
//! target/release/examples/unpack_layer LAYER.tar[.gz|.zst] DEST          # overlay layer dir
//! target/release/examples/unpack_layer --apply LAYER.tar DEST            # onto an existing tree
//! ```
//!
//! DEST must exist. Compression is detected from the content.

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (apply, rest) = match args.first().map(String::as_str) {
        Some("--apply") => (true, &args[1..]),
        _ => (false, &args[..]),
    };
    let [tar, dest] = rest else {
        eprintln!("usage: unpack_layer [--apply] LAYER.tar DEST");
        std::process::exit(2);
    };
    let run = || -> ci_core::Result<ci_core::layer::UnpackStats> {
        let file = std::fs::File::open(tar).map_err(|e| ci_core::Error::io("open", tar, e))?;
        let (_, reader) = ci_core::compression::decompress(file)?;
        if apply {
            ci_core::layer::apply(reader, Path::new(dest))
        } else {
            ci_core::layer::unpack(reader, Path::new(dest))
        }
    };
    match run() {
        Ok(stats) => println!("{}", serde_json::to_string(&stats).expect("stats serialise")),
        Err(e) => {
            eprintln!("unpack_layer: error: {e}");
            std::process::exit(1);
        }
    }
}
