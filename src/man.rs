//! `primed man`: one manual page, generated from the command line (clap_mangen) with every
//! subcommand's options in it, and the sections clap cannot know: exit status, environment,
//! files and the socket's defaults.

use std::io::{self, Write};

use clap::Command;

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Everything asked for was answered.
.TP
\fB1\fR
Some input was invalid, a job was quarantined or cancelled, a request failed, the socket's
permissions refused this user, or \fBserve\fR could not start (a damaged journal, a full disk,
an unsafe socket path, another daemon on the same data dir or socket).
.TP
\fB2\fR
The daemon could not be reached (or did not answer within \fB\-\-timeout\fR), the socket is
served by a user the client does not trust, or the command line is wrong.
.TP
\fB3\fR
\fBresult\fR: a job asked for finished long ago and was pruned under the retention policy
(\fB[retention]\fR in the configuration): its answer is no longer kept. (An id that never
existed is 1.)
.TP
\fB75\fR
The daemon refused some jobs for now (busy, disk full, shutting down): retry later.
.TP
\fB130\fR
\fBprime\fR was interrupted by Ctrl-C and cancelled its job.
"#;

const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBPRIMED_SOCKET\fR
The socket, for \fBserve\fR and every client command (like \fB\-\-socket\fR).
.TP
\fBPRIMED_TIMEOUT\fR
Seconds a client waits for the connection and for each answer that is not a job's (30).
.TP
\fBPRIMED_DAEMON_UID\fR
A uid besides the client's own and root's that may serve the socket.
.TP
\fBXDG_RUNTIME_DIR\fR, \fBTMPDIR\fR
Where the default socket lives: \fI$XDG_RUNTIME_DIR/primed/primed.sock\fR, else
\fI$TMPDIR/primed\-<uid>/primed.sock\fR (a directory that must be the user's own, mode 0700).
.TP
\fBXDG_DATA_HOME\fR, \fBHOME\fR
Where the default data dir lives: \fI$XDG_DATA_HOME/primed\fR, else
\fI~/.local/share/primed\fR.
.TP
\fBRUST_LOG\fR
Log filter of \fBserve\fR, over \fBdaemon.log_level\fR.
"#;

const FILES: &str = r#".SH FILES
.TP
\fI/etc/primed/primed.toml\fR
The configuration of the packaged service (\fB\-\-config\fR); every key and its default is in
the embedded \fIconfig/primed.toml\fR.
.TP
\fI<data dir>/journal/\fR
The sled journal; \fIprimed.mark\fR in it is the high-water mark that lets a damaged journal
be refused. Back up and restore the whole data dir, never single files.
.TP
\fI<socket>\fR, \fI<socket>.lock\fR
The socket (mode 0600, or 0660 with \fBdaemon.socket_group\fR) and its lock.
"#;

/// Writes the whole page.
pub fn render(command: Command, out: &mut dyn Write) -> io::Result<()> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let page = clap_mangen::Man::new(command.clone());
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand(sub, out)?;
    }
    out.write_all(EXIT_STATUS.as_bytes())?;
    out.write_all(ENVIRONMENT.as_bytes())?;
    out.write_all(FILES.as_bytes())
}

/// One subcommand: its own section, with its synopsis, description and options.
fn subcommand(sub: &Command, out: &mut dyn Write) -> io::Result<()> {
    let name = format!("primed {}", sub.get_name());
    writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
    let page = clap_mangen::Man::new(sub.clone().bin_name(&name));
    let mut body = Vec::new();
    page.render_synopsis_section(&mut body)?;
    page.render_description_section(&mut body)?;
    page.render_options_section(&mut body)?;
    // Its sections become subsections of this one.
    let body = String::from_utf8_lossy(&body).replace(".SH ", ".SS ");
    out.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_command_and_no_missing_pages() {
        let mut page = Vec::new();
        render(
            <crate::cli::Cli as clap::CommandFactory>::command(),
            &mut page,
        )
        .unwrap();
        let page = String::from_utf8(page).unwrap();
        for section in [
            "\"PRIMED SERVE\"",
            "\"PRIMED CHECK\"",
            "\"EXIT STATUS\"",
            "ENVIRONMENT",
        ] {
            assert!(page.contains(section), "no {section}");
        }
        assert!(
            page.contains("max\\-in\\-flight"),
            "serve's options are in it"
        );
        assert!(
            !page.contains("primed\\-serve(1)"),
            "no page it points to is missing"
        );
    }
}
