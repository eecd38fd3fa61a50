//! Layer and archive compression, detected by content (magic numbers), not
//! by file name: gzip, zstd and xz, or a plain tar.

use std::io::{self, Read, Write};

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
}

impl Compression {
    /// Recognise a stream by its first bytes.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }

    /// The OCI layer media type for a tar in this compression.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Xz => "application/vnd.oci.image.layer.v1.tar+xz",
        }
    }

    /// Compression from a layer media type (OCI and Docker spellings).
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        Some(match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd" => Compression::Zstd,
            _ => return None,
        })
    }
}

/// Peek at a stream, detect its compression, and return a reader of the
/// decompressed bytes.
pub fn decompress<'a>(mut input: impl Read + 'a) -> Result<(Compression, Box<dyn Read + 'a>)> {
    let mut head = Vec::with_capacity(6);
    while head.len() < 6 {
        let mut b = [0u8; 6];
        let n = match input.read(&mut b[..6 - head.len()]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crate::error::Error::io("read", "input", e)),
        };
        if n == 0 {
            break;
        }
        head.extend_from_slice(&b[..n]);
    }
    let c = Compression::detect(&head);
    let whole = io::Cursor::new(head).chain(input);
    Ok((c, reader_for(c, whole)?))
}

/// A decompressing reader for a known compression.
pub fn reader_for<'a>(c: Compression, input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 16, input))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(input)
                .map_err(|e| crate::error::Error::io("start zstd decoder", "input", e))?,
        ),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(input)),
    })
}

/// A compressing writer; call `finish` via [`Finish`] to flush the trailer.
pub fn writer_for<'a, W: Write + 'a>(c: Compression, out: W, level: Option<i32>) -> Result<Box<dyn FinishWrite + 'a>> {
    Ok(match c {
        Compression::None => Box::new(Plain(out)),
        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::new(level.unwrap_or(6).clamp(0, 9) as u32),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::write::Encoder::new(out, level.unwrap_or(3))
                .map_err(|e| crate::error::Error::io("start zstd encoder", "output", e))?,
        ),
        Compression::Xz => Box::new(xz2::write::XzEncoder::new(out, level.unwrap_or(6).clamp(0, 9) as u32)),
    })
}

/// A writer whose stream must be closed explicitly (compression trailers).
pub trait FinishWrite: Write {
    fn finish_box(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W>(W);
impl<W: Write> Write for Plain<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write> FinishWrite for Plain<W> {
    fn finish_box(self: Box<Self>) -> io::Result<()> {
        let mut w = self.0;
        w.flush()
    }
}
impl<W: Write> FinishWrite for flate2::write::GzEncoder<W> {
    fn finish_box(self: Box<Self>) -> io::Result<()> {
        self.finish().map(|mut w| w.flush()).and_then(|r| r)
    }
}
impl<W: Write> FinishWrite for zstd::stream::write::Encoder<'_, W> {
    fn finish_box(self: Box<Self>) -> io::Result<()> {
        self.finish().map(|mut w| w.flush()).and_then(|r| r)
    }
}
impl<W: Write> FinishWrite for xz2::write::XzEncoder<W> {
    fn finish_box(self: Box<Self>) -> io::Result<()> {
        self.finish().map(|mut w| w.flush()).and_then(|r| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_compression() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd, Compression::Xz] {
            let mut buf = Vec::new();
            let mut w = writer_for(c, &mut buf, None).unwrap();
            w.write_all(b"hello layer").unwrap();
            w.finish_box().unwrap();
            let (found, mut r) = decompress(&buf[..]).unwrap();
            assert_eq!(found, c);
            let mut out = String::new();
            r.read_to_string(&mut out).unwrap();
            assert_eq!(out, "hello layer");
        }
    }
}
