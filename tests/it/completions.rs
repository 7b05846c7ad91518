//! Shell completions and the man page come from the CLI definition itself, so they list every
//! command the binary has.

use std::process::Command;

use crate::common::{describe, BIN};

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run primed");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completion_scripts_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for command in ["serve", "check", "submit", "events", "bench", "kill"] {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    let unknown = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("run primed");
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
}

#[test]
fn the_man_page_is_roff_for_section_one_with_the_commands() {
    let page = stdout_of(&["man"]);
    assert!(
        page.contains(".TH primed 1"),
        "{}",
        &page[..page.len().min(300)]
    );
    for command in ["serve", "check", "events", "completions"] {
        assert!(page.contains(command), "the man page lacks {command}");
    }
}
