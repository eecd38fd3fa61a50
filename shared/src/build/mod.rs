//! The image builder (Dockerfile → image). This module grows with the
//! builder issue; what is here now is the part every build starts with:
//! knowing, fast, whether the files a step copies have changed.

pub mod checksum;
