//! Naming containers, as docker does everywhere a container is expected:
//! its full id, its name (with or without docker's leading `/`), or a
//! prefix of its id that no other container shares. A prefix matching two
//! containers is an error that lists both.

use super::container::{self, validate_name, Container};
use crate::error::{Error, Result};
use crate::store::{LockKind, Store};

/// The container named by `what`.
pub fn resolve(store: &Store, what: &str) -> Result<Container> {
    let all = container::list(store)?;
    pick(all, what)
}

/// Resolve several names at once (one listing of the store).
pub fn resolve_all(store: &Store, names: &[String]) -> Vec<(String, Result<Container>)> {
    match container::list(store) {
        Ok(all) => names.iter().map(|n| (n.clone(), pick(all.clone(), n))).collect(),
        Err(e) => {
            let msg = e.to_string();
            names.iter().map(|n| (n.clone(), Err(Error::Corrupt(msg.clone())))).collect()
        }
    }
}

fn pick(all: Vec<Container>, what: &str) -> Result<Container> {
    let name = what.strip_prefix('/').unwrap_or(what);
    if name.is_empty() {
        return Err(Error::invalid("an empty container name or id"));
    }
    // docker's order: the full id, then the exact name, then an id prefix.
    if let Some(c) = all.iter().find(|c| c.record.id == name) {
        return Ok(c.clone());
    }
    if let Some(c) = all.iter().find(|c| c.record.name == name) {
        return Ok(c.clone());
    }
    let hex = name.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let matching: Vec<&Container> = if hex { all.iter().filter(|c| c.record.id.starts_with(name)).collect() } else { vec![] };
    match matching.as_slice() {
        [c] => Ok((*c).clone()),
        [] => Err(Error::not_found("container", what).hint("`ci-run ps -a` lists the containers, by id and name")),
        many => Err(Error::Ambiguous {
            kind: "container",
            prefix: name.to_string(),
            candidates: many.iter().map(|c| format!("{} ({})", &c.record.id[..12], c.record.name)).collect(),
        }
        .hint("give more digits of the id, or the name")),
    }
}

/// `ci-run rename OLD NEW`: names stay unique (checked and changed under
/// the Containers lock, in one read-modify-write of the record).
pub fn rename(store: &Store, c: &mut Container, new: &str) -> Result<()> {
    let new = new.strip_prefix('/').unwrap_or(new);
    validate_name(new)?;
    if c.record.name == new {
        return Err(Error::invalid(format!("container {} is already named {new:?}", &c.record.id[..12])));
    }
    // The check and the write under one hold of the lock (so not through
    // Container::update, which takes the same lock itself).
    let _lock = store.lock(LockKind::Containers)?;
    if let Some(other) = container::list(store)?.into_iter().find(|o| o.record.name == new) {
        return Err(Error::Conflict(format!("the container name {new:?} is already in use by container {}", &other.record.id[..12]))
            .hint("choose another name, or rename or remove that container first"));
    }
    let path = c.dir.join("container.json");
    let data = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    let mut record: container::Record = serde_json::from_slice(&data).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
    record.name = new.to_string();
    let mut bytes = serde_json::to_vec_pretty(&record).expect("records serialise");
    bytes.push(b'\n');
    container::write_quick(&path, &bytes)?;
    c.record = record;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn c(prefix: &str, name: &str) -> Container {
        let id = format!("{prefix:0<64}");
        let record: container::Record = serde_json::from_value(serde_json::json!({
            "kind": "container", "id": id, "name": name, "image": "", "image_name": "x",
            "created": "2026-01-01T00:00:00Z", "command": [], "state": "created", "hostname": "h"
        }))
        .unwrap();
        Container { dir: PathBuf::from("/nonexistent").join(id), record }
    }

    #[test]
    fn id_name_prefix_and_ambiguity() {
        let all = vec![c("abc123", "web"), c("abd456", "db"), c("fff000", "abc")];
        assert_eq!(pick(all.clone(), &format!("{:0<64}", "abc123")).unwrap().record.name, "web");
        // A name wins over an id prefix.
        assert!(pick(all.clone(), "abc").unwrap().record.id.starts_with("fff000"));
        assert!(pick(all.clone(), "/db").unwrap().record.id.starts_with("abd456"));
        assert_eq!(pick(all.clone(), "abd").unwrap().record.name, "db");
        let e = pick(all.clone(), "ab").unwrap_err().to_string();
        assert!(e.contains("ambiguous") && e.contains("web") && e.contains("db"), "{e}");
        assert!(pick(all.clone(), "nope").unwrap_err().to_string().contains("no such container: nope"));
        assert!(pick(all, "").is_err());
    }
}
