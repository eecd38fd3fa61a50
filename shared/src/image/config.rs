//! Building image configs: the platform we run on, timestamps, and the
//! skeleton of a config that import and build fill in.

use oci_spec::image::{
    Arch, ConfigBuilder, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, Os, RootFsBuilder,
};

use crate::error::{Error, Result};

/// The OCI architecture name of this machine (`amd64`, `arm64`, ...).
pub fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        "x86" => Arch::i386,
        "arm" => Arch::ARM,
        "powerpc64" => Arch::PowerPC64,
        "s390x" => Arch::s390x,
        "riscv64" => Arch::RISCV64,
        other => Arch::Other(other.to_string()),
    }
}

/// Seconds since the epoch to stamp new images with: `$SOURCE_DATE_EPOCH`
/// when set (reproducible builds), else now.
pub fn epoch_now() -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.trim().parse::<i64>().map_err(|_| {
            Error::invalid(format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since 1970"))
        }),
        _ => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)),
    }
}

/// RFC 3339 in UTC, as image configs record times.
pub fn rfc3339(epoch_secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch_secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).expect("RFC 3339 formatting cannot fail for UTC times")
}

/// The time to record as "created": `SOURCE_DATE_EPOCH` or now.
pub fn created_now() -> Result<String> {
    Ok(rfc3339(epoch_now()?))
}

/// A config for linux on this architecture with the given layers and one
/// history entry per layer. The runtime part (`config`) starts empty.
pub fn new_config(diff_ids: Vec<String>, history: Vec<(String, String)>, created: &str) -> ImageConfiguration {
    let history = history
        .into_iter()
        .map(|(created_by, comment)| {
            let mut h = HistoryBuilder::default().created(created.to_string()).build().expect("history fields set");
            if !created_by.is_empty() {
                h.set_created_by(Some(created_by));
            }
            if !comment.is_empty() {
                h.set_comment(Some(comment));
            }
            h
        })
        .collect::<Vec<_>>();
    ImageConfigurationBuilder::default()
        .created(created.to_string())
        .architecture(host_arch())
        .os(Os::Linux)
        .config(ConfigBuilder::default().build().expect("empty config"))
        .rootfs(RootFsBuilder::default().typ("layers").diff_ids(diff_ids).build().expect("rootfs fields set"))
        .history(history)
        .build()
        .expect("config fields set")
}
