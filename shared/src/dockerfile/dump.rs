//! buildkit's AST dump (`Node.Dump()`), the format of the parser
//! conformance corpus: one line per instruction,
//!
//! ```text
//! (from "ubuntu:14.04")
//! (copy ["--from=build"] "/out" "/app")
//! (env "A" "1" "=" "B" "2" "=")
//! (onbuild (run "echo" "hi"))
//! ```
//!
//! — the keyword in lower case, the flags as a Go `%q` list, then every
//! argument quoted with Go's `strconv.Quote`.

use super::golang::quote;
use super::node::Node;

/// The dump of a whole file: one `(...)` line per instruction.
pub fn dump(nodes: &[Node]) -> String {
    nodes.iter().map(|n| format!("({})\n", dump_node(n))).collect()
}

/// One instruction, without the surrounding parentheses.
pub fn dump_node(node: &Node) -> String {
    let mut out = node.keyword.to_lowercase();
    if !node.flags.is_empty() {
        let flags: Vec<String> = node.flags.iter().map(|f| quote(f)).collect();
        out.push_str(&format!(" [{}]", flags.join(" ")));
    }
    for arg in &node.args {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    if let Some(sub) = &node.sub {
        out.push_str(&format!(" ({})", dump_node(sub)));
    }
    out.trim().to_string()
}
