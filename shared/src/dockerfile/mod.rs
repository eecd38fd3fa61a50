//! The Dockerfile language: a parser of its own, following docker's
//! (buildkit's) behaviour, in layers a learner can read one at a time:
//!
//! 1. [`parser`]: bytes to instructions — lines, `# escape=` and
//!    `# syntax=` directives, comments, continuations, heredoc bodies.
//! 2. [`node`]: one instruction line to a raw node — keyword, `--flags`,
//!    arguments in JSON (exec) or shell form. [`dump`] prints nodes in
//!    buildkit's format (the conformance corpus compares those dumps).
//! 3. [`instruction`]: raw nodes to typed, checked instructions.
//! 4. [`shell`]: variable substitution and word splitting; [`scope`]:
//!    which variables each line sees (global ARGs, stage ARGs, ENV).
//! 5. [`config`]: what metadata instructions do to an image config, shared
//!    by the builder and `ci-build import --change`.
//!
//! [`parse`] runs 1–3 on a file and groups the instructions into stages:
//!
//! ```
//! let df = ci_core::dockerfile::parse(b"ARG V=3.19\nFROM alpine:$V AS base\nRUN apk add curl\n", "Dockerfile").unwrap();
//! assert_eq!(df.stages[0].name(), Some("base"));
//! assert_eq!(df.stages[0].instructions.len(), 1);
//! ```

pub mod config;
pub mod dump;
pub mod golang;
pub mod heredoc;
pub mod instruction;
pub mod node;
pub mod parser;
pub mod scope;
pub mod shell;

pub use config::{apply, HealthConfig, ImageConfig, Metadata};
pub use instruction::{Command, CommandLine, Instruction};
pub use node::Node;
pub use scope::{GlobalArgs, StageState};

use crate::error::{Error, Result};

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// The escape character (`\`, or a backtick after `# escape=``).
    pub escape: char,
    /// The `# syntax=` directive, if any (accepted and ignored).
    pub syntax: Option<String>,
    /// The raw instructions, as buildkit's parser gives them.
    pub nodes: Vec<Node>,
    /// The ARG instructions before the first FROM.
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
    /// Warnings, as `FILE:LINE: message`.
    pub warnings: Vec<String>,
}

/// A build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The FROM instruction ([`Command::From`]).
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The stage's `AS` name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match &self.from.command {
            Command::From(f) => f.name.as_deref(),
            _ => None,
        }
    }

    /// The FROM line's fields (image still unexpanded).
    pub fn base(&self) -> &instruction::From {
        match &self.from.command {
            Command::From(f) => f,
            _ => unreachable!("a stage always starts with FROM"),
        }
    }
}

impl Dockerfile {
    /// The index of the stage named `name` (stage names are case-insensitive).
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let name = name.to_lowercase();
        self.stages.iter().position(|s| s.name() == Some(name.as_str()))
    }
}

/// Parse a Dockerfile. `file` names it in messages: every error reads
/// `FILE:LINE: what is wrong`.
pub fn parse(src: &[u8], file: &str) -> Result<Dockerfile> {
    let at = |line: usize, msg: &str| Error::invalid(format!("{file}:{line}: {msg}"));
    let ast = parser::parse_ast(src).map_err(|e| at(e.line, &e.message))?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &ast.nodes {
        let ins = Instruction::from_node(node).map_err(|m| at(node.start_line, &m))?;
        match (&ins.command, stages.last_mut()) {
            (Command::From(f), _) => {
                if let Some(name) = &f.name {
                    if let Some(other) = stages.iter().find(|s| s.name() == Some(name)) {
                        let msg = format!("stage name {name:?} is already used by the stage at line {}", other.from.line);
                        return Err(at(node.start_line, &msg));
                    }
                }
                stages.push(Stage { from: ins, instructions: Vec::new() });
            }
            (Command::Arg(_), None) => global_args.push(ins),
            (_, None) => {
                let msg = format!(
                    "{} before the first FROM: only ARG may come before FROM (a Dockerfile starts with FROM image)",
                    ins.command.keyword()
                );
                return Err(at(node.start_line, &msg));
            }
            (_, Some(stage)) => stage.instructions.push(ins),
        }
    }
    if stages.is_empty() {
        let last = ast.nodes.last().map_or(1, |n| n.end_line);
        return Err(at(last, "no FROM instruction: a Dockerfile needs at least one FROM image line"));
    }
    let warnings = ast.warnings.iter().map(|(line, w)| format!("{file}:{line}: {w}")).collect();
    Ok(Dockerfile { escape: ast.escape, syntax: ast.syntax, nodes: ast.nodes, global_args, stages, warnings })
}

/// Parse a single instruction, such as the value of `--change` (no file,
/// no line numbers in messages).
pub fn parse_line(text: &str) -> std::result::Result<Instruction, String> {
    let ast = parser::parse_ast(text.as_bytes()).map_err(|e| e.message)?;
    match ast.nodes.as_slice() {
        [node] => Instruction::from_node(node),
        _ => Err(format!("{text:?} is {} instructions, not one", ast.nodes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        parse(src.as_bytes(), "Dockerfile").unwrap_err().to_string()
    }

    #[test]
    fn errors_are_file_line_what() {
        assert_eq!(err("FROM a\nRUNN make\n"), "Dockerfile:2: unknown instruction \"RUNN\" — did you mean RUN?");
        assert!(err("RUN x\nFROM a\n").starts_with("Dockerfile:1: RUN before the first FROM: only ARG"));
        assert!(err("ARG A\n").starts_with("Dockerfile:1: no FROM instruction"));
        assert!(err("").starts_with("Dockerfile:1: file with no instructions"));
        assert!(err("FROM busybox\n\nENV PATH\n").starts_with("Dockerfile:3: ENV PATH has no value"));
        assert!(err("FROM a\nCMD [\"a\", [\"b\"]]\n").starts_with("Dockerfile:2: the JSON (exec) form must be an array of strings"));
        assert!(err("FROM a\nCOPY <<EOF /x\nhello\n").starts_with("Dockerfile:2: unterminated heredoc"));
        assert!(err("FROM a AS x\nFROM b AS X\n").contains("already used by the stage at line 1"));
    }

    #[test]
    fn stages_and_global_args() {
        let df = parse(b"ARG A=1\nARG B\nFROM x:$A AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /\n", "Dockerfile").unwrap();
        assert_eq!(df.global_args.len(), 2);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.stage_index("BUILD"), Some(0));
        assert_eq!(df.stages[1].base().image, "scratch");
        assert_eq!(df.stages[1].instructions[0].line, 6);
    }

    #[test]
    fn heredoc_instructions() {
        let df = parse(b"FROM a\nRUN <<EOF bash\nset -e\necho $HOME\nEOF\nCOPY <<-A <<B /etc/\n\tone\n\tA\ntwo\nB\n", "Dockerfile").unwrap();
        let [run, copy] = df.stages[0].instructions.as_slice() else { panic!() };
        let Command::Run(r) = &run.command else { panic!() };
        assert_eq!(r.command, CommandLine::Shell("<<EOF bash".into()));
        assert_eq!(r.heredocs[0].content, "set -e\necho $HOME\n");
        let Command::Copy(c) = &copy.command else { panic!() };
        assert!(c.sources.is_empty());
        assert_eq!((c.inline[0].name.as_str(), c.inline[0].data.as_str()), ("A", "one\n"));
        assert_eq!((c.inline[1].name.as_str(), c.inline[1].data.as_str()), ("B", "two\n"));
        assert_eq!(c.dest, "/etc/");
        assert_eq!((copy.line, copy.end_line), (6, 10));
    }
}
