//! Hash a file with the store's hasher and say how fast, to compare with the
//! floor (`openssl dgst -sha256`, SHA-NI) in scripts/bench-import.sh:
//!
//! ```text
//! cargo build --release -p ci-core --example digest_file
//! target/release/examples/digest_file FILE
//! ```
//!
//! sha2 chooses its SHA-NI backend at run time (cpufeatures); a rate far
//! below OpenSSL's would mean it fell back to the portable code.

use std::io::Read;

use ci_core::digest::{Algorithm, Hasher};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: digest_file FILE");
        std::process::exit(2);
    };
    let mut f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // The same buffer size as the blob writer's.
    let mut buf = vec![0u8; 1 << 20];
    let mut h = Hasher::new(Algorithm::Sha256);
    let (start, mut n) = (std::time::Instant::now(), 0u64);
    loop {
        let k = f.read(&mut buf).unwrap_or_else(|e| panic!("read {path}: {e}"));
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{}  {path}", h.finish());
    eprintln!("{n} bytes in {:.3} s: {:.2} GB/s", secs, n as f64 / secs / 1e9);
}
