//! The Dockerfile pieces used together the way the builder uses them:
//! parse, expand FROM lines with the global ARGs, walk a stage's
//! instructions with its own ARG/ENV scope, apply the metadata ones to the
//! base image's config, and replay ONBUILD triggers.

use std::collections::BTreeMap;

use ci_core::dockerfile::scope::platform_args;
use ci_core::dockerfile::{apply, parse, parse_line, Command, CommandLine, GlobalArgs, Metadata, StageState};

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
ARG TAG=1.36
FROM ${BASE}:${TAG} AS build
ARG TAG
ARG OUT=/out
ENV VERSION=${TAG}-dev \
    BUILD_DIR=$OUT
WORKDIR $BUILD_DIR
RUN <<EOF
echo "$VERSION" > version
EOF

FROM scratch
ARG OUT
COPY --from=build ${OUT:-/missing}/version /etc/
LABEL org.example.tag="${TAG:-none}"
HEALTHCHECK --interval=10s CMD ["/bin/check"]
ONBUILD COPY <<EOF /etc/motd
hello $NAME
EOF
CMD ["serve"]
ENTRYPOINT ["/bin/app"]
"#;

#[test]
fn a_two_stage_build_walked_like_the_builder() {
    let df = parse(DOCKERFILE.as_bytes(), "Dockerfile").unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    let build_args: BTreeMap<String, String> = [("TAG".to_string(), "1.37".to_string())].into();

    // Global ARGs: for FROM lines only.
    let mut globals = GlobalArgs::new(df.escape, &build_args, &platform_args());
    for ins in &df.global_args {
        let Command::Arg(decls) = &ins.command else { panic!() };
        globals.declare(decls).unwrap();
    }
    let from = globals.expand_from(df.stages[0].base()).unwrap();
    assert_eq!(from.image, "busybox:1.37", "--build-arg TAG wins over the default");
    assert_eq!(globals.expand_from(df.stages[1].base()).unwrap().image, "scratch");

    // Stage 1 starts from the base image's config.
    let mut base = Metadata::default();
    base.config.env = Some(vec!["PATH=/bin".into()]);
    base.config.cmd = Some(vec!["sh".into()]);
    let mut meta = base.clone();
    let mut state = StageState::new(df.escape, &base.config, &globals, &build_args);
    for ins in &df.stages[0].instructions {
        match &ins.command {
            Command::Run(run) => {
                // The builder runs it with state.env(); the heredoc is its script.
                assert_eq!(run.command, CommandLine::Shell("<<EOF".into()));
                assert_eq!(run.heredocs[0].content, "echo \"$VERSION\" > version\n");
                assert!(state.env().contains(&"VERSION=1.37-dev".to_string()));
                assert!(state.env().contains(&"OUT=/out".to_string()), "ARG values are in RUN's environment");
            }
            other => apply(&mut meta, other, &mut state).unwrap(),
        }
    }
    assert_eq!(meta.config.env.as_ref().unwrap(), &["PATH=/bin", "VERSION=1.37-dev", "BUILD_DIR=/out"]);
    assert_eq!(meta.config.working_dir.as_deref(), Some("/out"));
    assert_eq!(meta.config.cmd, base.config.cmd, "no ENTRYPOINT: the base CMD stays");

    // Stage 2: OUT is redeclared without a value and there is no global OUT.
    let mut meta2 = Metadata::default();
    let mut state2 = StageState::new(df.escape, &meta2.config, &globals, &build_args);
    for ins in &df.stages[1].instructions {
        match &ins.command {
            Command::Copy(copy) => {
                let Command::Copy(c) = ins.command.expand(&state2.lexer(), &state2.vars()).unwrap() else { panic!() };
                assert_eq!(copy.from.as_deref(), Some("build"));
                assert_eq!(c.sources, ["/missing/version"], "OUT is declared but unset here");
                assert_eq!(c.dest, "/etc/");
            }
            other => apply(&mut meta2, other, &mut state2).unwrap(),
        }
    }
    let c = &meta2.config;
    assert_eq!(c.labels.as_ref().unwrap()["org.example.tag"], "none", "a global ARG is not visible in a stage");
    assert_eq!(c.healthcheck.as_ref().unwrap().test, ["CMD", "/bin/check"]);
    assert_eq!(c.healthcheck.as_ref().unwrap().interval, 10_000_000_000);
    assert_eq!(c.entrypoint.as_ref().unwrap(), &["/bin/app"]);
    assert_eq!(c.cmd.as_ref().unwrap(), &["serve"], "CMD came before ENTRYPOINT in this stage: kept");
    let triggers = c.on_build.as_ref().unwrap();
    assert_eq!(triggers, &["COPY <<EOF /etc/motd\nhello $NAME\nEOF"]);

    // A later build FROM this image replays the trigger, expanding the
    // heredoc with that build's variables.
    let trigger = parse_line(&triggers[0]).unwrap();
    let mut child = StageState::for_config(c);
    child.set_env("NAME", "world");
    let Command::Copy(copy) = trigger.command.expand(&child.lexer(), &child.vars()).unwrap() else { panic!() };
    assert_eq!((copy.inline[0].name.as_str(), copy.inline[0].data.as_str()), ("EOF", "hello world\n"));
}

#[test]
fn escape_directive_changes_continuations_and_substitution() {
    let src = "# escape=`\nFROM scratch\nENV DIR=C:\\data `\n    LOG=C:\\logs\\`$x\nWORKDIR $DIR\\app\n";
    let df = parse(src.as_bytes(), "Dockerfile").unwrap();
    let globals = GlobalArgs::new(df.escape, &BTreeMap::new(), &BTreeMap::new());
    let mut meta = Metadata::default();
    let mut state = StageState::new(df.escape, &meta.config, &globals, &BTreeMap::new());
    for ins in &df.stages[0].instructions {
        apply(&mut meta, &ins.command, &mut state).unwrap();
    }
    assert_eq!(meta.config.env.as_ref().unwrap(), &["DIR=C:\\data", "LOG=C:\\logs\\$x"]);
    assert_eq!(meta.config.working_dir.as_deref(), Some("/C:\\data\\app"), "relative on Linux: joined to /");
}
