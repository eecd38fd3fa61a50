//! OCI archives (`oci-archive:FILE[:REF]`): an OCI image layout in a tarball.
//! Reading indexes the tarball and streams blobs from their offsets;
//! writing builds the layout in a temporary directory of the store and
//! tars it into place atomically.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::store::Store;

use super::oci_dir::{tar_dir, LayoutSource, OciDirDest};
use super::TarIndex;

/// Open an OCI archive for pulling.
pub fn source(path: &Path, reference: Option<String>, what: String) -> Result<LayoutSource<TarIndex>> {
    Ok(LayoutSource { files: TarIndex::open(path)?, reference, what })
}

/// An OCI archive being written: a layout directory until [`OciArchiveDest::finish`].
pub struct OciArchiveDest {
    pub dir: OciDirDest,
    path: PathBuf,
    _tmp: crate::store::TempDir,
}

impl OciArchiveDest {
    pub fn create(store: &Store, path: &Path, reference: Option<String>) -> Result<OciArchiveDest> {
        let tmp = store.temp_dir("oci-archive-")?;
        let dir = OciDirDest::create(tmp.path(), reference)?;
        Ok(OciArchiveDest { dir, path: path.to_path_buf(), _tmp: tmp })
    }

    /// Write index.json and the tarball.
    pub fn finish(&self) -> Result<()> {
        self.dir.finish()?;
        tar_dir(self._tmp.path(), &self.path)
    }
}
