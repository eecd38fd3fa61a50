//! What a tar archive looks like from the outside: every 512-byte header
//! carries a checksum (bytes 148..156, octal: the sum of the header's bytes
//! with the checksum field itself counted as spaces). That is how a stream
//! is recognised as a tar before anything is stored from it, and how the
//! tar crate's terse header errors are turned into sentences.

use std::io::{self, Read};

/// Is this 512-byte block a tar header (its checksum matches)?
pub fn is_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == ' ' || c == '\0'), 8) else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { u32::from(b' ') } else { u32::from(b) })
        .sum();
    sum == stored
}

/// Read until `buf` is full or the stream ends; the number of bytes read.
pub fn read_full(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A sentence for a read error of the tar crate: its header errors quote
/// raw bytes ("numeric field was not a number: …"), which say nothing to a user.
pub fn describe_error(e: &io::Error) -> String {
    let msg = e.to_string();
    if msg.contains("cksum") || msg.contains("checksum") || msg.contains("numeric field") {
        "a 512-byte block that should be a tar header is not one (corrupt, or not a tar)".to_string()
    } else if e.kind() == io::ErrorKind::UnexpectedEof || msg.contains("entire block") || msg.contains("EOF") {
        "the stream ends in the middle of an entry (truncated)".to_string()
    } else {
        msg.lines().next().unwrap_or_default().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_headers() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_cksum();
        b.append_data(&mut h, "x", &b"y"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(is_header(&data[..512]));
        let mut bad = data[..512].to_vec();
        bad[0] ^= 1;
        assert!(!is_header(&bad));
        assert!(!is_header(&[0u8; 100]));
        let mut r = &data[..];
        let mut buf = [0u8; 700];
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 700);
    }
}
